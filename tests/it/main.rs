//! The one integration-test binary. `support` starts the local stand-ins (moto, registries, the
//! fake Kubernetes API server, fake GitHub/Slack); each module tests one area as users meet it.
//! Test code may panic on a broken expectation: that is how a test fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod fakes;

mod action;
mod broken_inputs;
mod cli;
mod config;
mod deps;
mod e2e_actions;
mod e2e_ecs;
mod e2e_eks;
mod e2e_prod;
mod ecs;
mod ecs_bluegreen;
mod ecs_lock;
mod eks;
mod getting_started;
mod hooks_ecs;
mod hooks_eks;
mod iam;
mod identity;
mod image;
mod kill;
mod layers;
mod live;
mod notify;
mod plan;
mod render;
mod render_cmd;
mod scenarios;
mod secrets;
mod templates;
mod user_agent;
