//! The flag groups the commands share (`PromArgs` for the Prometheus connection,
//! `OutputArgs` for what a watch shows), `--set` parsing, and the client the
//! Prometheus flags describe.

use crate::core::rules;
use crate::io::prom::{split_argv, Connection, PromClient, SigV4Config};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args, Clone, Default)]
pub struct PromArgs {
    /// Prometheus base URL, with any path prefix (e.g. https://mimir/prometheus).
    #[arg(long, env = "ROLLWATCH_PROMETHEUS_URL")]
    pub prometheus: Option<String>,
    /// File holding a bearer token for Prometheus; read again whenever it changes
    /// (rotated Kubernetes service account tokens, symlink swaps included).
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<PathBuf>,
    /// Command printing a bearer token (bare, or JSON with `access_token` and
    /// `expires_in`), e.g. 'gcloud auth print-access-token'; split into words without
    /// a shell. Run again before the token expires and after a 401.
    #[arg(long, value_name = "COMMAND", value_parser = parse_command, conflicts_with = "bearer_token_file")]
    pub bearer_token_command: Option<String>,
    /// Basic auth user name.
    #[arg(long, value_name = "USER")]
    pub basic_auth_user: Option<String>,
    /// File holding the basic auth password.
    #[arg(long, value_name = "FILE", requires = "basic_auth_user")]
    pub basic_auth_password_file: Option<PathBuf>,
    /// Extra request header, `Name: value` (repeatable), e.g. `X-Scope-OrgID: team-a`.
    #[arg(long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// PEM file of CA certificates to trust for Prometheus (replaces the system roots).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Sign requests with AWS SigV4 for this region (Amazon Managed Service for
    /// Prometheus); credentials from the AWS environment variables, AWS_PROFILE, or
    /// web identity (EKS).
    #[arg(long, value_name = "REGION", conflicts_with_all = ["bearer_token_file", "bearer_token_command", "basic_auth_user"])]
    pub sigv4_region: Option<String>,
    /// The SigV4 signing name.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "aps",
        requires = "sigv4_region"
    )]
    pub sigv4_service: String,
}

/// `--bearer-token-command`: a value that splits into words.
fn parse_command(s: &str) -> Result<String, String> {
    match split_argv(s) {
        Some(_) => Ok(s.to_string()),
        None => Err(
            "not a command: give its words, quoted as in a shell (an unclosed quote, or nothing)"
                .into(),
        ),
    }
}

impl PromArgs {
    /// The connection these flags describe (what the client and the agent are built from).
    pub fn connection(&self) -> Connection {
        Connection {
            prometheus: self.prometheus.clone(),
            bearer_token_file: self.bearer_token_file.clone(),
            bearer_token_command: self.bearer_token_command.as_deref().and_then(split_argv),
            basic_auth_user: self.basic_auth_user.clone(),
            basic_auth_password_file: self.basic_auth_password_file.clone(),
            headers: self.headers.clone(),
            ca_file: self.ca_file.clone(),
            sigv4: self.sigv4_region.as_ref().map(|region| SigV4Config {
                region: region.clone(),
                service: self.sigv4_service.clone(),
            }),
        }
    }
}

/// What a watch shows besides its log: `--events`, `--report`, notifications, live view.
#[derive(Debug, Args, Clone, Default)]
pub struct OutputArgs {
    /// Write one JSON object per line for each state change, action and outcome
    /// (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,
    /// Write report.json, report.md and report.html into DIR when the watch ends.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// No live view on a terminal: plain log lines.
    #[arg(long)]
    pub no_live: bool,
}

pub fn parse_set(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))?;
    if !rules::template::is_name(k) {
        return Err(format!("`{k}` is not a valid variable name"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// Builds the Prometheus client from the flags, falling back to the file's URL.
pub fn prom_client(
    args: &PromArgs,
    file_url: Option<&str>,
    timeout: Duration,
) -> Result<PromClient, String> {
    args.connection().client(file_url, timeout)
}
