use super::*;

fn row(
    id: i64,
    kind: &str,
    state: ActionState,
    ok: Option<bool>,
    rerun_of: Option<i64>,
) -> ActionRow {
    ActionRow::sample(id, kind, state, ok, rerun_of)
}

fn live(paused_by: Option<&str>, failed: Option<ActionStatus>) -> ResumePlan {
    ResumePlan::Live {
        paused_by: paused_by.map(str::to_string),
        pause_failed: failed.map(|s| ("pause-rule".to_string(), s)),
    }
}

#[test]
fn resume_plan_is_total_over_the_rows() {
    use ActionState::*;
    let failed = ActionStatus::Failed {
        code: None,
        signal: None,
    };
    let rolled = ResumePlan::Decided(Outcome::RolledBack {
        rule: "rollback-rule".into(),
        dry_run: false,
    });
    let unknown = ResumePlan::Decided(Outcome::ActionUnknown {
        action: "rollback",
        rule: "rollback-rule".into(),
    });
    let cases: Vec<(&str, Vec<ActionRow>, bool, ResumePlan)> = vec![
        ("no rows: live", vec![], false, live(None, None)),
        (
            "rollback started, not idempotent: unknown",
            vec![row(1, "rollback", Started, None, None)],
            false,
            ResumePlan::Unknown(row(1, "rollback", Started, None, None)),
        ),
        (
            "rollback started, idempotent: re-run",
            vec![row(1, "rollback", Started, None, None)],
            true,
            ResumePlan::Rerun(row(1, "rollback", Started, None, None)),
        ),
        (
            "re-run itself interrupted: unknown, never a third run",
            vec![
                row(1, "rollback", Rerun, None, None),
                row(2, "rollback", Started, None, Some(1)),
            ],
            true,
            ResumePlan::Unknown(row(2, "rollback", Started, None, Some(1))),
        ),
        (
            "rollback resolved unknown but watch not ended: still unknown, never live",
            vec![row(1, "rollback", Unknown, None, None)],
            false,
            unknown.clone(),
        ),
        (
            "rollback finished: decided from the row",
            vec![row(1, "rollback", Finished, Some(true), None)],
            false,
            rolled.clone(),
        ),
        (
            "re-run finished: decided from the re-run",
            vec![
                row(1, "rollback", Rerun, None, None),
                row(2, "rollback", Finished, Some(true), Some(1)),
            ],
            true,
            rolled,
        ),
        (
            "rollback failed",
            vec![row(1, "rollback", Finished, Some(false), None)],
            false,
            ResumePlan::Decided(Outcome::RollbackFailed {
                rule: "rollback-rule".into(),
                status: failed.clone(),
            }),
        ),
        (
            "a rerun row without its re-run: unknown, not live",
            vec![row(1, "rollback", Rerun, None, None)],
            true,
            unknown,
        ),
        (
            "pause succeeded: live, paused",
            vec![row(1, "pause", Finished, Some(true), None)],
            false,
            live(Some("pause-rule"), None),
        ),
        (
            "pause failed: live, rollback rules still act",
            vec![row(1, "pause", Finished, Some(false), None)],
            false,
            live(None, Some(failed)),
        ),
        (
            "pause unknown: live, not paused again",
            vec![row(1, "pause", Unknown, None, None)],
            false,
            live(None, Some(ActionStatus::Unknown)),
        ),
        (
            "pause started, not idempotent: unknown",
            vec![row(1, "pause", Started, None, None)],
            false,
            ResumePlan::Unknown(row(1, "pause", Started, None, None)),
        ),
        (
            "a rollback after a pause decides",
            vec![
                row(1, "pause", Finished, Some(true), None),
                row(2, "rollback", Started, None, None),
            ],
            false,
            ResumePlan::Unknown(row(2, "rollback", Started, None, None)),
        ),
    ];
    for (name, rows, idem, want) in cases {
        assert_eq!(resume_plan(&rows, idem, idem), want, "{name}");
    }
}
