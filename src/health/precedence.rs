//! Precedence: the one place where the operator, the flag files, the
//! health checks and the capacity monitors combine into a reply.
//!
//! The operator's state is the ceiling. A state of MAINT, DOWN, FAIL or
//! STOPPED (from the state file, a signal or ctl) goes out as the operator
//! set it; a flag file makes the admin state at least DRAIN or MAINT, as
//! it does today. Only while the operator says UP, READY or DRAIN may the
//! host lower the reply, never raise it:
//!
//! | input                        | effect                                        |
//! |------------------------------|-----------------------------------------------|
//! | check failing, `on_fail=down`  | `down`, the admin state still said          |
//! | check failing, `on_fail=drain` | admin at least `drain`                      |
//! | check failing, `on_fail=maint` | admin `maint`                               |
//! | capacity at `drain_above`    | admin at least `drain`                        |
//! | capacity load                | weight scaled down (floored at `min_weight`)  |
//! | CPU weight (`cpu_weight`)    | weight scaled down, as today                  |
//! | check unknown (no result yet)| nothing                                       |
//!
//! When a check or the capacity lowered the state and the operator gave no
//! description, the reply's description says why (HAProxy shows it in
//! `last_agt`). The weight is the lowest of the CPU's and the capacity's,
//! on every status, as today's CPU weight. The maxconn is `budget`'s.
//!
//! Keeping an operator's DOWN or MAINT untouched (rather than adding an
//! admin word to it) matters because HAProxy keeps what a reply leaves
//! unsaid: a `down drain` sent while a check fails would leave the server
//! drained after the check recovers and the reply went back to `down`.
//!
//! [`decide`] is pure; its result renders with `protocol::render_with`.
//! Its `reasons` are what `ctl status` prints, headline first.

use super::budget::Maxconn;
use super::capacity::{self, View};
use super::check::{Status as CheckStatus, Verdict};
use super::config::OnFail;
use crate::protocol::{Admin, Overlay};
use crate::state::{State, Status};

/// One check as precedence sees it.
#[derive(Clone, Debug)]
pub struct CheckInput<'a> {
    pub name: &'a str,
    pub on_fail: OnFail,
    pub status: CheckStatus,
}

/// Everything a reply depends on.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    /// The operator's state: state file, signals, ctl.
    pub state: &'a State,
    /// From the flag files (`protocol::flag_admin`).
    pub flag_admin: Option<Admin>,
    /// Today's CPU weight (`protocol::overlay(..).weight`), if on.
    pub cpu_weight: Option<u32>,
    pub checks: &'a [CheckInput<'a>],
    pub capacity: Option<&'a View>,
    pub maxconn: Maxconn,
}

/// What to reply, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Render with `protocol::render_with(&state, overlay)`.
    pub state: State,
    pub overlay: Overlay,
    /// For `ctl status`: the headline ("down because check app failed 2×
    /// (HTTP 503)"), then each further reason.
    pub reasons: Vec<String>,
}

fn on_fail_admin(on_fail: OnFail) -> Option<Admin> {
    match on_fail {
        OnFail::Down => None,
        OnFail::Drain => Some(Admin::Drain),
        OnFail::Maint => Some(Admin::Maint),
    }
}

/// "check app failed 2× (HTTP 503)".
fn failed(c: &CheckInput) -> String {
    let last = c.status.last.map(|o| o.describe()).unwrap_or_default();
    format!(
        "check {} failed {}× ({last})",
        c.name,
        c.status.fails.max(1)
    )
}

/// The reply for `inputs`: the operator's state lowered by what the host
/// says, never raised. In steps: the operator's ceiling, the checks, the
/// monitors, the flag files, the weight, the maxconn.
pub fn decide(inputs: &Inputs) -> Decision {
    let operator = inputs.state;
    let operator_admin = admin_of_status(operator.status);
    let failing: Vec<&CheckInput> = inputs
        .checks
        .iter()
        .filter(|c| c.status.verdict == Verdict::Failing)
        .collect();
    // The operator's ceiling; under it, the checks, then the monitors.
    let lowered = if lowerable(operator.status) {
        by_checks(&failing).then(by_capacity(inputs.capacity))
    } else {
        operator_wins(operator.status, &failing)
    };
    let base = crate::protocol::base_weight(operator);
    let (weight, weight_reason) = weight(base, inputs.cpu_weight, inputs.capacity);
    // The reasons, headline first.
    let mut reasons = lowered.reasons;
    reasons.extend(by_flag_file(inputs.flag_admin, operator_admin));
    if reasons.is_empty() {
        reasons.push(unchanged(operator.status));
    }
    reasons.extend(unknown(inputs.checks));
    reasons.extend(weight_reason);
    reasons.extend(inputs.maxconn.describe());
    // The reply: the operator's state, lowered, with the budget's maxconn.
    let mut state = operator.clone();
    state.maxconn = inputs.maxconn.value();
    let mut admin = inputs.flag_admin.max(lowered.admin);
    if lowered.down {
        state.status = Status::Down;
        // A reply that says `down` still states the admin axis.
        admin = admin.max(operator_admin);
    }
    if state.description.is_none() {
        state.description = lowered.why;
    }
    Decision {
        state,
        overlay: Overlay { admin, weight },
        reasons,
    }
}

/// What the host does to a reply the operator lets it lower.
#[derive(Default)]
struct Lowered {
    /// Operationally down.
    down: bool,
    /// At least this admin state.
    admin: Option<Admin>,
    /// For the reply's description: the first thing that lowered it.
    why: Option<String>,
    reasons: Vec<String>,
}

impl Lowered {
    /// Both, this one's reasons first.
    fn then(self, later: Lowered) -> Lowered {
        let mut reasons = self.reasons;
        reasons.extend(later.reasons);
        Lowered {
            down: self.down || later.down,
            admin: self.admin.max(later.admin),
            why: self.why.or(later.why),
            reasons,
        }
    }
}

/// The operator's admin state, as a reply states it.
fn admin_of_status(status: Status) -> Option<Admin> {
    match status {
        Status::Drain => Some(Admin::Drain),
        Status::Up | Status::Ready => Some(Admin::Ready),
        Status::Maint => Some(Admin::Maint),
        Status::Down | Status::Fail | Status::Stopped => None,
    }
}

/// The operator's ceiling: only UP, READY and DRAIN may the host lower.
fn lowerable(status: Status) -> bool {
    matches!(status, Status::Up | Status::Ready | Status::Drain)
}

/// The operator's DOWN, MAINT, FAIL or STOPPED goes out as set; the
/// failing checks are listed as outranked.
fn operator_wins(status: Status, failing: &[&CheckInput]) -> Lowered {
    let word = match status {
        Status::Maint => "maint",
        Status::Fail => "fail",
        Status::Stopped => "stopped",
        _ => "down",
    };
    let mut reasons = vec![format!(
        "{word} because the operator's state is {}",
        status.name()
    )];
    reasons.extend(
        failing
            .iter()
            .map(|c| format!("{} (the operator's state wins)", failed(c))),
    );
    Lowered {
        reasons,
        ..Lowered::default()
    }
}

/// The failing checks: `down` if one says so, and the most restrictive
/// admin state any of them asks for.
fn by_checks(failing: &[&CheckInput]) -> Lowered {
    let mut lowered = Lowered::default();
    if let Some(c) = failing.iter().find(|c| c.on_fail == OnFail::Down) {
        lowered.down = true;
        lowered.reasons.push(format!("down because {}", failed(c)));
        lowered.why = Some(format!("check {} failed", c.name));
    }
    let worst_admin = failing
        .iter()
        .filter_map(|c| on_fail_admin(c.on_fail).map(|a| (a, *c)))
        .max_by_key(|(a, _)| *a);
    if let Some((a, c)) = worst_admin {
        lowered.admin = Some(a);
        lowered
            .reasons
            .push(format!("{} because {}", a.word(), failed(c)));
        lowered
            .why
            .get_or_insert_with(|| format!("check {} failed", c.name));
    }
    lowered
}

/// The capacity monitors: at `drain_above`, admin at least DRAIN.
fn by_capacity(view: Option<&View>) -> Lowered {
    let Some(view) = view.filter(|v| v.draining) else {
        return Lowered::default();
    };
    let (above, _) = view.drain.unwrap_or((0, 0));
    let load = view.load_ppm.unwrap_or(0) / 10_000;
    let heaviest = view
        .heaviest()
        .map(|r| format!(" ({})", r.describe()))
        .unwrap_or_default();
    Lowered {
        down: false,
        admin: Some(Admin::Drain),
        why: Some(format!("capacity load {load} %")),
        reasons: vec![format!(
            "drain because capacity load {load} % reached drain_above {above} %{heaviest}"
        )],
    }
}

/// A flag file more restrictive than the operator's admin state.
fn by_flag_file(flag: Option<Admin>, operator_admin: Option<Admin>) -> Option<String> {
    flag.filter(|&f| Some(f) > operator_admin)
        .map(|f| format!("{} because its flag file exists", f.word()))
}

/// The headline when nothing lowered the operator's UP, READY or DRAIN.
fn unchanged(status: Status) -> String {
    match status {
        Status::Drain => "drain because the operator's state is DRAIN".to_string(),
        s => format!(
            "up: the operator's state is {} and no check fails",
            s.name()
        ),
    }
}

/// The checks without a result yet, which change nothing.
fn unknown(checks: &[CheckInput]) -> impl Iterator<Item = String> {
    checks
        .iter()
        .filter(|c| c.status.verdict == Verdict::Unknown)
        .map(|c| format!("check {} has no result yet", c.name))
}

/// The weight: the lowest the CPU and the capacity allow of `base` (the
/// operator's), and why when it is below `base`.
fn weight(base: u32, cpu: Option<u32>, capacity: Option<&View>) -> (Option<u32>, Option<String>) {
    let by_capacity = capacity
        .and_then(|v| Some((v, v.load_ppm?)))
        .map(|(v, load)| (capacity::weight(base, load, v.min_weight), v));
    let by_cpu = |c: u32| {
        (
            Some(c),
            (c < base).then(|| format!("weight {c} % because of CPU load")),
        )
    };
    match (cpu, by_capacity) {
        (None, None) => (None, None),
        (Some(c), None) => by_cpu(c),
        (Some(c), Some((w, _))) if c <= w => by_cpu(c),
        (_, Some((w, view))) => {
            let why = (w < base).then(|| {
                let mostly = view
                    .heaviest()
                    .map(|r| format!(", mostly {}", r.describe()))
                    .unwrap_or_default();
                format!(
                    "weight {w} % because capacity load is {} %{mostly}",
                    view.load_ppm.unwrap_or(0) / 10_000
                )
            });
            (Some(w), why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::capacity::Reading;
    use crate::health::check::Outcome;
    use crate::protocol::render_with;
    use std::time::Duration;

    fn check(
        name: &'static str,
        on_fail: OnFail,
        verdict: Verdict,
        last: Outcome,
        fails: u32,
    ) -> CheckInput<'static> {
        CheckInput {
            name,
            on_fail,
            status: CheckStatus {
                verdict,
                last: Some(last),
                fails,
                duration: Duration::from_millis(2),
                runs_total: 5,
                failures_total: fails.into(),
            },
        }
    }

    fn view(load_pct: u32, draining: bool) -> View {
        View {
            load_ppm: Some(load_pct * 10_000),
            draining,
            min_weight: 1,
            drain: Some((90, 80)),
            readings: vec![Reading {
                name: "memory",
                value: Some(77.0),
                full: 95.0,
                significance: 1,
                load_ppm: 810_526,
                failing: false,
            }],
        }
    }

    use OnFail::{Down as FDown, Drain as FDrain, Maint as FMaint};
    use Outcome::{Http, TimedOut};
    use Verdict::{Failing, Passing, Unknown};

    /// The precedence table: (state, flag file, checks, capacity load %
    /// and drain, reply, headline reason).
    #[test]
    fn precedence_table() {
        let st = |s: Status| State::with_status(s);
        let app_ok = check("app", FDown, Passing, Http(200), 0);
        let app_503 = check("app", FDown, Failing, Http(503), 2);
        let app_new = check("app", FDown, Unknown, Http(200), 0);
        let db_drain = check("db", FDrain, Failing, TimedOut, 3);
        let db_maint = check("db", FMaint, Failing, TimedOut, 3);
        type Row<'a> = (
            State,
            Option<Admin>,
            Vec<CheckInput<'a>>,
            Option<(u32, bool)>,
            &'a str,
            &'a str,
        );
        let rows: Vec<Row> = vec![
            // Nothing to say: the operator's state.
            (
                st(Status::Up),
                None,
                vec![],
                None,
                "up ready 100%",
                "up: the operator's state is UP and no check fails",
            ),
            (
                st(Status::Up),
                None,
                vec![app_ok.clone()],
                None,
                "up ready 100%",
                "up: the operator's state is UP and no check fails",
            ),
            // Unknown changes nothing.
            (
                st(Status::Up),
                None,
                vec![app_new.clone()],
                None,
                "up ready 100%",
                "up: the operator's state is UP and no check fails",
            ),
            // A failing check lowers UP, READY and DRAIN; both axes said.
            (
                st(Status::Up),
                None,
                vec![app_503.clone()],
                None,
                "down ready 100% # check app failed",
                "down because check app failed 2× (HTTP 503)",
            ),
            (
                st(Status::Ready),
                None,
                vec![app_503.clone()],
                None,
                "down ready 100% # check app failed",
                "down because check app failed 2× (HTTP 503)",
            ),
            (
                st(Status::Drain),
                None,
                vec![app_503.clone()],
                None,
                "down drain 100% # check app failed",
                "down because check app failed 2× (HTTP 503)",
            ),
            (
                st(Status::Up),
                None,
                vec![db_drain.clone()],
                None,
                "up drain 100% # check db failed",
                "drain because check db failed 3× (timed out)",
            ),
            (
                st(Status::Up),
                None,
                vec![db_maint.clone()],
                None,
                "up maint 100% # check db failed",
                "maint because check db failed 3× (timed out)",
            ),
            (
                st(Status::Up),
                None,
                vec![db_drain.clone(), db_maint.clone(), app_503.clone()],
                None,
                "down maint 100% # check app failed",
                "down because check app failed 2× (HTTP 503)",
            ),
            // The operator's DOWN, MAINT, FAIL, STOPPED win, unchanged.
            (
                st(Status::Down),
                None,
                vec![db_maint.clone()],
                None,
                "down 100%",
                "down because the operator's state is DOWN",
            ),
            (
                st(Status::Maint),
                None,
                vec![app_503.clone()],
                None,
                "maint 100%",
                "maint because the operator's state is MAINT",
            ),
            (
                st(Status::Fail),
                None,
                vec![app_503.clone()],
                None,
                "fail 100%",
                "fail because the operator's state is FAIL",
            ),
            (
                st(Status::Stopped),
                None,
                vec![],
                None,
                "stopped 100%",
                "stopped because the operator's state is STOPPED",
            ),
            // The operator's DRAIN stays DRAIN while checks pass and fail.
            (
                st(Status::Drain),
                None,
                vec![app_ok.clone()],
                None,
                "up drain 100%",
                "drain because the operator's state is DRAIN",
            ),
            (
                st(Status::Drain),
                None,
                vec![db_drain.clone()],
                None,
                "up drain 100% # check db failed",
                "drain because check db failed 3× (timed out)",
            ),
            // Flag files: as today, at least their admin state.
            (
                st(Status::Up),
                Some(Admin::Drain),
                vec![],
                None,
                "up drain 100%",
                "drain because its flag file exists",
            ),
            (
                st(Status::Up),
                Some(Admin::Maint),
                vec![app_503.clone()],
                None,
                "down maint 100% # check app failed",
                "down because check app failed 2× (HTTP 503)",
            ),
            (
                st(Status::Drain),
                Some(Admin::Maint),
                vec![],
                None,
                "up maint 100%",
                "maint because its flag file exists",
            ),
            (
                st(Status::Down),
                Some(Admin::Drain),
                vec![],
                None,
                "down drain 100%",
                "down because the operator's state is DOWN",
            ),
            (
                st(Status::Maint),
                Some(Admin::Drain),
                vec![],
                None,
                "maint 100%",
                "maint because the operator's state is MAINT",
            ),
            // Capacity: the weight, and drain at drain_above.
            (
                st(Status::Up),
                None,
                vec![],
                Some((38, false)),
                "up ready 62%",
                "up: the operator's state is UP and no check fails",
            ),
            (
                st(Status::Up),
                None,
                vec![],
                Some((95, true)),
                "up drain 5% # capacity load 95 %",
                "drain because capacity load 95 % reached drain_above 90 % (memory 77 % used (full at 95 %))",
            ),
            (
                st(Status::Maint),
                None,
                vec![],
                Some((95, true)),
                "maint 5%",
                "maint because the operator's state is MAINT",
            ),
        ];
        for (state, flag, checks, cap, reply, headline) in rows {
            let v = cap.map(|(l, d)| view(l, d));
            let d = decide(&Inputs {
                state: &state,
                flag_admin: flag,
                cpu_weight: None,
                checks: &checks,
                capacity: v.as_ref(),
                maxconn: Maxconn::None,
            });
            let line = render_with(&d.state, d.overlay);
            let names: Vec<&str> = checks.iter().map(|c| c.name).collect();
            assert_eq!(
                line.trim_end(),
                reply,
                "{:?} flag {flag:?} checks {names:?} cap {cap:?}",
                state.status
            );
            assert_eq!(
                d.reasons[0], headline,
                "{:?} {names:?} {cap:?}",
                state.status
            );
        }
    }

    #[test]
    fn weight_maxconn_and_description() {
        let mut state = State::with_status(Status::Up);
        state.weight = Some(50);
        let v = view(38, false);
        let inputs = |cpu: Option<u32>, maxconn| Inputs {
            state: &state,
            flag_admin: None,
            cpu_weight: cpu,
            checks: &[],
            capacity: Some(&v),
            maxconn,
        };
        // Capacity scales the state's weight: 50 × 62 %.
        let d = decide(&inputs(None, Maxconn::None));
        assert_eq!(d.overlay.weight, Some(31));
        assert!(d.reasons.contains(&"weight 31 % because capacity load is 38 %, mostly memory 77 % used (full at 95 %)".to_string()), "{:?}", d.reasons);
        // The lower of CPU and capacity.
        let d = decide(&inputs(Some(20), Maxconn::None));
        assert_eq!(d.overlay.weight, Some(20));
        assert!(
            d.reasons
                .contains(&"weight 20 % because of CPU load".to_string()),
            "{:?}",
            d.reasons
        );
        assert_eq!(
            decide(&inputs(Some(45), Maxconn::None)).overlay.weight,
            Some(31)
        );
        // maxconn from the budget.
        let d = decide(&inputs(
            None,
            crate::health::budget::maxconn(Some(100), None, 2),
        ));
        assert_eq!(
            render_with(&d.state, d.overlay),
            "up ready 31% maxconn:50\n"
        );
        assert!(
            d.reasons.contains(
                &"maxconn 50: maxconn_total 100 split across 2 load balancers".to_string()
            )
        );
        // An operator's description is kept.
        let mut described = State::with_status(Status::Up);
        described.description = Some("deploy 42".into());
        let checks = [check("app", FDown, Failing, Http(500), 1)];
        let d = decide(&Inputs {
            state: &described,
            flag_admin: None,
            cpu_weight: None,
            checks: &checks,
            capacity: None,
            maxconn: Maxconn::None,
        });
        assert_eq!(
            render_with(&d.state, d.overlay),
            "down ready 100% # deploy 42\n"
        );
        assert_eq!(
            d.reasons,
            vec!["down because check app failed 1× (HTTP 500)"]
        );
        // Unknown checks are listed after the headline.
        let checks = [check("app", FDown, Unknown, Http(200), 0)];
        let d = decide(&Inputs {
            state: &described,
            flag_admin: None,
            cpu_weight: None,
            checks: &checks,
            capacity: None,
            maxconn: Maxconn::None,
        });
        assert_eq!(d.reasons[1], "check app has no result yet");
    }
}
