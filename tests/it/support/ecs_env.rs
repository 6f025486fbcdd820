//! An ECS "environment" on moto + the ECS controller: a copy of examples/shop with an
//! environment file `test` targeting cluster `shop-test`, its log group, the network (via boto3: deployer has
//! no EC2 client; the VPC has DNS hostnames on), an ALB with one target group per service, and
//! the four services created with the SDK on an initial task definition and rolled out.
//!
//! Everything is as real ECS and ELB accept it (the stand-in refuses the rest): every service has
//! a `networkConfiguration` (the task definitions are `awsvpc`), and every target group a
//! service uses is attached to the ALB — `user`'s by the listener's default action, the others
//! by path rules `/<service>/*`, each blue/green colour by its production route or by a
//! preview rule (path plus header `x-deployer-preview: true`) for the idle one.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    AwsVpcConfiguration, ContainerDefinition, DeploymentAlarms, DeploymentCircuitBreaker,
    DeploymentConfiguration, LaunchType, LoadBalancer, NetworkConfiguration, NetworkMode, PortMapping,
};
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, LoadBalancerTypeEnum, ProtocolEnum, RuleCondition, TargetTypeEnum,
};
use deployer::config::{Config, Environment};

use super::moto::{Moto, REGION};
use super::{copy_tree, root, venv_bin};

/// At most this many ECS environments (moto + controller) at once: on 2 shared cores more
/// would starve the controllers and skew the timing checks of other tests.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

pub const SERVICES: [&str; 4] = ["user", "order", "payment", "notification"];
pub const CLUSTER: &str = "shop-test";
pub const ALARM: &str = "shop-test-5xx";
/// The environment's CloudWatch Logs group (the templates' `${log_group}`, `/ecs/<product>-<env>`):
/// awslogs fails a task whose group does not exist (hooks' RunTask tasks on the stand-in).
pub const LOG_GROUP: &str = "/ecs/shop-test";

/// How the services are created.
#[derive(Debug, Clone)]
pub struct Options {
    /// deploymentCircuitBreaker (enable, rollback).
    pub circuit_breaker: Option<(bool, bool)>,
    pub desired: i32,
    /// `health:` block of the environment file (YAML flow mapping).
    pub health: String,
    /// This service uses native ECS blue/green (BLUE_GREEN, bake 1 min × scale, a production
    /// listener rule and an alternate target group).
    pub blue_green: Option<&'static str>,
    /// moto's time scale (0.2 in tests: rollouts five times faster than real ECS).
    pub scale: f64,
    /// This service is a deployer-driven blue/green pair `shop-<s>-blue` (live, on its target
    /// group behind the production route) and `shop-<s>-green` (idle, 0 tasks, own group behind
    /// a preview rule); the environment gets `strategy: blue-green`.
    pub colours: Option<&'static str>,
    /// How production reaches the pair: a listener rule `/<s>/*` named in the environment file
    /// (`target.ecs.production_rules`), or the listener's default action.
    pub production: Production,
}

/// Where a deployer-driven blue/green pair gets production traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Production {
    /// A path rule, named in the environment file.
    NamedRule,
    /// The listener's default action (nothing named).
    DefaultAction,
}

/// A deployer-driven blue/green pair as the fixture made it.
#[derive(Debug, Clone)]
pub struct ColourEnv {
    /// The deployer service the pair belongs to.
    pub service: String,
    /// Target groups of `-blue` (live at first) and `-green`.
    pub blue: String,
    pub green: String,
    /// The production switch: the named rule, or None for the listener's default action.
    pub production: Option<String>,
    /// The preview rule (header `x-deployer-preview: true`) forwarding to green.
    pub preview: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            circuit_breaker: None,
            desired: 2,
            health: "{ bake_time: 1s }".into(),
            blue_green: None,
            scale: 0.2,
            colours: None,
            production: Production::NamedRule,
        }
    }
}

pub struct EcsEnv {
    pub moto: Moto,
    pub sdk: aws_config::SdkConfig,
    pub config: Config,
    pub env: Environment,
    pub ecs: aws_sdk_ecs::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub cw: aws_sdk_cloudwatch::Client,
    pub subnets: Vec<String>,
    pub security_group: String,
    pub vpc: String,
    pub load_balancer: String,
    pub listener: String,
    /// service → target group ARN.
    pub target_groups: BTreeMap<String, String>,
    /// service → the task definition the fixture created it with.
    pub initial: BTreeMap<String, String>,
    /// Native blue/green: (green target group, production listener rule).
    pub blue_green: Option<(String, String)>,
    /// Deployer-driven blue/green pair.
    pub colours: Option<ColourEnv>,
    dir: tempfile::TempDir,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

/// An image of `service` pinned by digest; `marker` (crashloop, imagepull, …) goes into the
/// repository path (a tag before a digest is dropped when the image is pinned, as it should be).
pub fn image(service: &str, marker: Option<&str>, n: u8) -> String {
    let dir = marker.map(|m| format!("{m}/")).unwrap_or_default();
    format!(
        "111111111111.dkr.ecr.eu-west-1.amazonaws.com/{dir}shop/{service}@sha256:{}",
        format!("{n:02x}").repeat(32)
    )
}

/// All four services on version `n`.
pub fn images(n: u8) -> BTreeMap<String, String> {
    SERVICES.iter().map(|s| ((*s).to_owned(), image(s, None, n))).collect()
}

impl EcsEnv {
    pub async fn start(opts: Options) -> Self {
        let slot = SLOTS.acquire().await.unwrap();
        let moto = Moto::start_scaled(opts.scale);
        let sdk = moto.sdk_config().await;
        create_lock_table(&sdk).await;
        aws_sdk_cloudwatchlogs::Client::new(&sdk)
            .create_log_group()
            .log_group_name(LOG_GROUP)
            .send()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&root().join("examples/shop"), dir.path());
        write_env_file(dir.path(), &opts, None);
        let config = Config::load(&dir.path().join("deployer.yaml")).unwrap();
        let env = config.environment("test").unwrap();
        let (vpc, subnets, sg) = network(&moto);
        let ecs = aws_sdk_ecs::Client::new(&sdk);
        let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
        let cw = aws_sdk_cloudwatch::Client::new(&sdk);
        ecs.create_cluster().cluster_name(CLUSTER).send().await.unwrap();
        let lb = elb
            .create_load_balancer()
            .name("shop-test")
            .r#type(LoadBalancerTypeEnum::Application)
            .set_subnets(Some(subnets.clone()))
            .security_groups(&sg)
            .send()
            .await
            .unwrap();
        let load_balancer = lb.load_balancers()[0].load_balancer_arn().unwrap().to_owned();
        let mut target_groups = BTreeMap::new();
        for s in SERVICES {
            target_groups.insert(s.to_owned(), target_group(&elb, &vpc, &format!("shop-test-{s}")).await);
        }
        // The service with two colours or native blue/green routes its own production traffic;
        // the default action serves `user` otherwise (or the pair, when that is production).
        let special = opts.colours.or(opts.blue_green);
        let default_action = match (opts.colours, opts.production) {
            (Some(s), Production::DefaultAction) => forward(&target_groups[s]),
            _ if special == Some("user") => Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    aws_sdk_elasticloadbalancingv2::types::FixedResponseActionConfig::builder()
                        .status_code("404")
                        .build(),
                )
                .build(),
            _ => forward(&target_groups["user"]),
        };
        let listener = elb
            .create_listener()
            .load_balancer_arn(&load_balancer)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .default_actions(default_action)
            .send()
            .await
            .unwrap()
            .listeners()[0]
            .listener_arn()
            .unwrap()
            .to_owned();
        // Every other group is attached by a path rule: real ECS refuses a service on a target
        // group that no load balancer uses.
        for (i, s) in (100..).zip(SERVICES) {
            if Some(s) != special {
                rule(&elb, &listener, i, &[path(&format!("/{s}/*"))], forward(&target_groups[s])).await;
            }
        }
        let mut me = Self {
            moto,
            sdk,
            config,
            env,
            ecs,
            elb,
            cw,
            subnets,
            security_group: sg,
            vpc,
            load_balancer,
            listener,
            target_groups,
            initial: BTreeMap::new(),
            blue_green: None,
            colours: None,
            dir,
            _slot: slot,
        };
        for s in SERVICES {
            let td = me.register_plain(s, &image(s, None, 1)).await;
            if opts.blue_green == Some(s) {
                me.blue_green = Some(me.create_blue_green_service(s, &td, &opts).await);
            } else if opts.colours == Some(s) {
                let colours = me.create_colours(s, &td, &opts).await;
                if let Some(rule) = &colours.production {
                    // Name the production rule in the environment file, as a user would.
                    write_env_file(me.dir.path(), &opts, Some((s, rule)));
                    me.config = Config::load(&me.dir.path().join("deployer.yaml")).unwrap();
                    me.env = me.config.environment("test").unwrap();
                }
                me.colours = Some(colours);
            } else {
                me.create_service(s, &td, &opts, None).await;
            }
            me.initial.insert(s.to_owned(), td);
        }
        for s in SERVICES {
            if opts.colours == Some(s) {
                me.wait_completed(&format!("shop-{s}-blue")).await;
            } else {
                me.wait_completed(&format!("shop-{s}")).await;
            }
        }
        me
    }

    /// Registers a minimal task definition in the family the templates render (`shop-<s>-test`).
    pub async fn register_plain(&self, service: &str, image: &str) -> String {
        self.ecs
            .register_task_definition()
            .family(format!("shop-{service}-test"))
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .container_definitions(
                ContainerDefinition::builder()
                    .name(service)
                    .image(image)
                    .essential(true)
                    .port_mappings(PortMapping::builder().container_port(8080).build())
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .task_definition()
            .unwrap()
            .task_definition_arn()
            .unwrap()
            .to_owned()
    }

    /// Creates ECS service `name` for deployer service `service` (ALB target group attached).
    pub async fn create_service(
        &self,
        service: &str,
        task_definition: &str,
        opts: &Options,
        extra: Option<DeploymentConfiguration>,
    ) {
        let mut cfg = extra.unwrap_or_else(|| {
            DeploymentConfiguration::builder().maximum_percent(200).minimum_healthy_percent(100).build()
        });
        if let Some((enable, rollback)) = opts.circuit_breaker {
            cfg.deployment_circuit_breaker =
                Some(DeploymentCircuitBreaker::builder().enable(enable).rollback(rollback).build());
        }
        self.ecs
            .create_service()
            .cluster(CLUSTER)
            .service_name(format!("shop-{service}"))
            .task_definition(task_definition)
            .desired_count(opts.desired)
            .launch_type(LaunchType::Fargate)
            .network_configuration(self.network_configuration())
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(&self.target_groups[service])
                    .container_name(service)
                    .container_port(8080)
                    .build(),
            )
            .deployment_configuration(cfg)
            .send()
            .await
            .unwrap();
    }

    /// Creates the deployer-driven pair `shop-<service>-blue` (live) / `-green` (idle, 0 tasks):
    /// blue behind the production route (a path rule, or the default action made in `start`),
    /// green behind a preview rule (path plus header `x-deployer-preview: true`, a higher
    /// priority than production so that it wins for preview requests).
    pub async fn create_colours(&self, service: &str, task_definition: &str, opts: &Options) -> ColourEnv {
        let blue = self.target_groups[service].clone();
        let green = target_group(&self.elb, &self.vpc, &format!("shop-test-{service}-green")).await;
        let route = path(&format!("/{service}/*"));
        let preview =
            rule(&self.elb, &self.listener, 15, &[route.clone(), preview_header()], forward(&green)).await;
        let production = match opts.production {
            Production::NamedRule => {
                Some(rule(&self.elb, &self.listener, 20, &[route], forward(&blue)).await)
            }
            Production::DefaultAction => None,
        };
        for (colour, group, desired) in [("blue", &blue, opts.desired), ("green", &green, 0)] {
            self.ecs
                .create_service()
                .cluster(CLUSTER)
                .service_name(format!("shop-{service}-{colour}"))
                .task_definition(task_definition)
                .desired_count(desired)
                .launch_type(LaunchType::Fargate)
                .network_configuration(self.network_configuration())
                .load_balancers(
                    LoadBalancer::builder()
                        .target_group_arn(group)
                        .container_name(service)
                        .container_port(8080)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        ColourEnv { service: service.to_owned(), blue, green, production, preview }
    }

    /// Creates `service` with native ECS blue/green: production traffic through a listener rule
    /// on the blue target group, green as the alternate behind a test rule (header
    /// `x-deployer-preview: true`). Returns (green, production rule).
    pub async fn create_blue_green_service(
        &self,
        service: &str,
        task_definition: &str,
        opts: &Options,
    ) -> (String, String) {
        let green = target_group(&self.elb, &self.vpc, &format!("shop-test-{service}-green")).await;
        let blue = &self.target_groups[service];
        let route = path(&format!("/{service}/*"));
        let test_rule =
            rule(&self.elb, &self.listener, 5, &[route.clone(), preview_header()], forward(&green)).await;
        let rule = rule(&self.elb, &self.listener, 10, &[route], forward(blue)).await;
        let mut cfg = DeploymentConfiguration::builder()
            .strategy(aws_sdk_ecs::types::DeploymentStrategy::BlueGreen)
            .bake_time_in_minutes(1)
            .build();
        if let Some((enable, rollback)) = opts.circuit_breaker {
            cfg.deployment_circuit_breaker =
                Some(DeploymentCircuitBreaker::builder().enable(enable).rollback(rollback).build());
        }
        self.ecs
            .create_service()
            .cluster(CLUSTER)
            .service_name(format!("shop-{service}"))
            .task_definition(task_definition)
            .desired_count(opts.desired)
            .launch_type(LaunchType::Fargate)
            .network_configuration(self.network_configuration())
            .load_balancers(
                LoadBalancer::builder()
                    .target_group_arn(blue)
                    .container_name(service)
                    .container_port(8080)
                    .advanced_configuration(
                        aws_sdk_ecs::types::AdvancedConfiguration::builder()
                            .alternate_target_group_arn(&green)
                            .production_listener_rule(&rule)
                            .test_listener_rule(&test_rule)
                            .role_arn("arn:aws:iam::123456789012:role/ecs-blue-green")
                            .build(),
                    )
                    .build(),
            )
            .deployment_configuration(cfg)
            .send()
            .await
            .unwrap();
        (green, rule)
    }

    /// The services' awsvpc network (real ECS refuses an awsvpc service without one).
    pub fn network_configuration(&self) -> NetworkConfiguration {
        NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(self.subnets.clone()))
                    .security_groups(&self.security_group)
                    .build()
                    .unwrap(),
            )
            .build()
    }

    /// A deployment configuration with ECS deployment alarms (ECS itself rolls back on ALARM).
    pub fn alarm_config(names: &[&str]) -> DeploymentConfiguration {
        DeploymentConfiguration::builder()
            .alarms(
                DeploymentAlarms::builder()
                    .set_alarm_names(Some(names.iter().map(|s| (*s).to_owned()).collect()))
                    .enable(true)
                    .rollback(true)
                    .build()
                    .unwrap(),
            )
            .build()
    }

    /// The service's current state.
    pub async fn service(&self, ecs_name: &str) -> aws_sdk_ecs::types::Service {
        self.ecs.describe_services().cluster(CLUSTER).services(ecs_name).send().await.unwrap().services()[0]
            .clone()
    }

    /// Waits until the service has one deployment and it is COMPLETED.
    pub async fn wait_completed(&self, ecs_name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.service(ecs_name).await;
            let deps = s.deployments();
            if deps.len() == 1
                && deps[0].rollout_state().map(aws_sdk_ecs::types::DeploymentRolloutState::as_str)
                    == Some("COMPLETED")
            {
                return;
            }
            assert!(Instant::now() < deadline, "{ecs_name} did not complete: {deps:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates the CloudWatch alarm `name` (state OK).
    pub async fn alarm(&self, name: &str) {
        create_alarm(&self.cw, name).await;
        self.set_alarm(name, "OK").await;
    }

    pub async fn set_alarm(&self, name: &str, state: &str) {
        self.cw
            .set_alarm_state()
            .alarm_name(name)
            .state_value(aws_sdk_cloudwatch::types::StateValue::from(state))
            .state_reason(format!("set to {state} by the test"))
            .send()
            .await
            .unwrap();
    }

    /// The status of a task definition (ACTIVE, INACTIVE, DELETE_IN_PROGRESS).
    pub async fn task_definition_status(&self, arn: &str) -> String {
        let out = self.ecs.describe_task_definition().task_definition(arn).send().await.unwrap();
        out.task_definition().unwrap().status().unwrap().as_str().to_owned()
    }

    pub async fn tags(&self, ecs_name: &str) -> BTreeMap<String, String> {
        let arn = self.service(ecs_name).await.service_arn().unwrap().to_owned();
        let out = self.ecs.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
        out.tags()
            .iter()
            .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap_or_default().to_owned()))
            .collect()
    }

    pub fn product_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

async fn target_group(elb: &aws_sdk_elasticloadbalancingv2::Client, vpc: &str, name: &str) -> String {
    elb.create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .vpc_id(vpc)
        .target_type(TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_owned()
}

/// Writes `environments/test.yaml`; `production` names a pair's production rule.
fn write_env_file(dir: &std::path::Path, opts: &Options, production: Option<(&str, &str)>) {
    let rules =
        production.map(|(s, rule)| format!(", production_rules: {{ {s}: \"{rule}\" }}")).unwrap_or_default();
    std::fs::write(
        dir.join("environments/test.yaml"),
        format!(
            "account_id: \"123456789012\"\nregion: {REGION}\ntarget:\n  ecs: {{ cluster: {CLUSTER}{rules} }}\n\
             timeouts: {{ rollout: 60s }}\nhealth: {}\n{}",
            opts.health,
            if opts.colours.is_some() { "strategy: { type: blue-green, scale_down_delay: 2s }\n" } else { "" }
        ),
    )
    .unwrap();
}

/// A forward action to one target group.
pub fn forward(group: &str) -> Action {
    Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(group).build()
}

/// A path-pattern condition.
pub fn path(pattern: &str) -> RuleCondition {
    RuleCondition::builder().field("path-pattern").values(pattern).build()
}

/// The preview condition: header `x-deployer-preview: true`.
pub fn preview_header() -> RuleCondition {
    RuleCondition::builder()
        .field("http-header")
        .http_header_config(
            aws_sdk_elasticloadbalancingv2::types::HttpHeaderConditionConfig::builder()
                .http_header_name("x-deployer-preview")
                .values("true")
                .build(),
        )
        .build()
}

/// Creates a listener rule; returns its ARN.
pub async fn rule(
    elb: &aws_sdk_elasticloadbalancingv2::Client,
    listener: &str,
    priority: i32,
    conditions: &[RuleCondition],
    action: Action,
) -> String {
    elb.create_rule()
        .listener_arn(listener)
        .priority(priority)
        .set_conditions(Some(conditions.to_vec()))
        .actions(action)
        .send()
        .await
        .unwrap()
        .rules()[0]
        .rule_arn()
        .unwrap()
        .to_owned()
}

/// A target group in the fixture's VPC.
pub async fn new_target_group(env: &EcsEnv, name: &str) -> String {
    target_group(&env.elb, &env.vpc, name).await
}

/// VPC, two subnets and a security group, made with boto3 against moto.
fn network(moto: &Moto) -> (String, Vec<String>, String) {
    let script = r#"
import boto3, json, sys
ec2 = boto3.client("ec2", endpoint_url=sys.argv[1], region_name=sys.argv[2],
                   aws_access_key_id="testing", aws_secret_access_key="testing")
vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=sys.argv[2] + az)["Subnet"]["SubnetId"]
           for i, az in ((1, "a"), (2, "b"))]
sg = ec2.create_security_group(GroupName="svc", Description="svc", VpcId=vpc)["GroupId"]
print(json.dumps({"vpc": vpc, "subnets": subnets, "sg": sg}))
"#;
    let out = std::process::Command::new(venv_bin("python"))
        .args(["-c", script, &moto.url, REGION])
        .output()
        .expect("python");
    assert!(out.status.success(), "network setup: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let subnets = v["subnets"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    (v["vpc"].as_str().unwrap().to_owned(), subnets, v["sg"].as_str().unwrap().to_owned())
}

/// The deploy lock's DynamoDB table, as a user creates it once per account and region
/// (docs/getting-started.md; `platform::ecs::lock`'s module doc has the schema).
pub async fn create_lock_table(sdk: &aws_config::SdkConfig) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(deployer::platform::ecs::lock::DEFAULT_TABLE)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("lock_id")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder().attribute_name("lock_id").key_type(KeyType::Hash).build().unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    aws_sdk_dynamodb::Client::new(sdk)
        .update_time_to_live()
        .table_name(deployer::platform::ecs::lock::DEFAULT_TABLE)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("ttl")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

/// The CloudWatch alarm `name` on the ALB's 5xx count, as a user defines it (state OK).
pub async fn create_alarm(cw: &aws_sdk_cloudwatch::Client, name: &str) {
    cw.put_metric_alarm()
        .alarm_name(name)
        .metric_name("HTTPCode_Target_5XX_Count")
        .namespace("AWS/ApplicationELB")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap();
}
