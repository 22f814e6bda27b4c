//! Running an action from the watch loop: the command's environment, its claim in
//! the journal (it starts only once the claim is committed), the signals that arrive
//! while it runs, and the events that describe it.

use super::journal::Claim;
use super::*;

impl<R: ActionRunner> Watch<'_, R> {
    /// Runs (or, in a dry run, describes) an action. None in a dry run.
    ///
    /// The command starts only once the journal has claimed it; a claim that cannot be
    /// recorded is reported as a failed action and nothing runs.
    pub(super) async fn act(
        &mut self,
        kind: &'static str,
        rule: &Rule,
        cmd: &CommandSpec,
        fired: &[FiredSeries],
        at: Duration,
    ) -> Option<ActionReport> {
        let at_ms = now_ms();
        self.sinks.emit(
            at_ms,
            &Event::ActionStarted {
                action: kind,
                rule: rule.name.clone(),
                argv: cmd.argv.clone(),
                timeout_s: cmd.timeout.as_secs_f64(),
                dry_run: self.opts.dry_run,
            },
        );
        if self.opts.dry_run {
            return None;
        }
        let first = fired.first();
        let mut env = vec![
            ("ROLLWATCH_ACTION".to_string(), kind.to_string()),
            ("ROLLWATCH_RULE".to_string(), rule.name.clone()),
            (
                "ROLLWATCH_VALUE".to_string(),
                first
                    .and_then(|f| f.value)
                    .map(crate::core::events::float::exact)
                    .unwrap_or_default(),
            ),
            ("ROLLWATCH_THRESHOLD".to_string(), rule.condition()),
            (
                "ROLLWATCH_LABELS".to_string(),
                first.map(|f| labels_json(&f.labels)).unwrap_or_default(),
            ),
            (
                "ROLLWATCH_BREACHED_FOR".to_string(),
                first
                    .map(|f| at.saturating_sub(f.since).as_secs())
                    .unwrap_or_default()
                    .to_string(),
            ),
        ];
        for (name, v) in &self.spec.vars {
            env.push((
                format!("ROLLWATCH_VAR_{}", name.to_ascii_uppercase()),
                v.clone(),
            ));
        }
        let claim = Claim {
            kind,
            rule: &rule.name,
            argv: &cmd.argv,
            env: &env,
            fired,
            at_ms,
        };
        // A store that is briefly busy (a backup holding its lock) gets a few tries;
        // a claim that still cannot be recorded runs nothing.
        let mut claimed = self.journal.claim(&claim);
        for backoff in [500, 1500] {
            if claimed.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(backoff)).await;
            claimed = self.journal.claim(&claim);
        }
        let (report, silence) = match claimed {
            Err(why) => {
                error!(event = "action_not_claimed", action = kind, rule = %rule.name, error = %why, "the {kind} command was NOT started: it could not be recorded first, and running it unrecorded could run it twice");
                (
                    ActionReport {
                        status: ActionStatus::NotClaimed(why),
                        duration: Duration::ZERO,
                        output_tail: Vec::new(),
                    },
                    None,
                )
            }
            Ok(ticket) => {
                // The silence is created beside the command, never before it.
                let silence = cmd.silence.clone().map(|spec| {
                    let comment = format!(
                        "rollwatch rolled back [{}] (rule `{}`, rules file {})",
                        crate::core::events::vars_text(&self.spec.vars),
                        rule.name,
                        self.spec.path.display()
                    );
                    let ends_at =
                        crate::core::events::rfc3339_ms(at_ms + spec.for_.as_millis() as i64);
                    let matchers = spec.matchers.clone();
                    let task = tokio::spawn(async move {
                        crate::io::silence::create(&spec, &comment, at_ms).await
                    });
                    (task, matchers, ends_at)
                });
                env.extend(ticket.env);
                let req = ActionRequest {
                    kind,
                    argv: cmd.argv.clone(),
                    timeout: cmd.timeout,
                    env,
                    on_spawn: ticket.on_spawn,
                };
                let fut = self.runner.run(&req);
                tokio::pin!(fut);
                let report = loop {
                    tokio::select! {
                        r = &mut fut => break r,
                        Some(sig) = self.signals.recv() => {
                            self.sinks.emit(now_ms(), &Event::Signal { signal: format!("{sig:?}"), during_action: true });
                            self.deferred_signal.get_or_insert(sig);
                        }
                    }
                };
                self.journal.finished(&report.status, now_ms());
                (report, silence)
            }
        };
        self.sinks.emit(
            now_ms(),
            &Event::ActionFinished {
                action: kind,
                rule: rule.name.clone(),
                status: report.status.to_string(),
                succeeded: report.status.succeeded(),
                duration_s: report.duration.as_secs_f64(),
                output_tail: report.output_tail.clone(),
            },
        );
        // After the action's own events, so a slow Alertmanager delays neither.
        if let Some((task, matchers, ends_at)) = silence {
            let (silence_id, error) = match task.await {
                Ok(Ok(id)) => (Some(id), None),
                Ok(Err(e)) => (None, Some(e)),
                Err(e) => (None, Some(e.to_string())),
            };
            self.sinks.emit(
                now_ms(),
                &Event::Silenced {
                    rule: rule.name.clone(),
                    silence_id,
                    matchers,
                    ends_at,
                    error,
                },
            );
        }
        Some(report)
    }
}
