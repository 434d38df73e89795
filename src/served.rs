//! What a read of the state file means for what is served: the state the
//! file holds, or FAIL when it cannot be used, or (on a re-read, when the
//! file could not be read at all) the state served so far.
//!
//! The one definition of "load the state file or FAIL", shared by the agent
//! (at start, on SIGHUP, on a retry; see `service`) and one-shot mode (see
//! `oneshot`). Pure: reading the file is `state::load`'s, logging why and
//! retrying are the callers'.

use crate::state::{Problem, State, Status};

/// What to serve when a service starts, or in one-shot mode: the file's
/// state, or FAIL if the file cannot be used for any reason (the file
/// itself is left for the operator to fix).
pub fn at_start(loaded: &Result<State, Problem>) -> State {
    match loaded {
        Ok(state) => state.clone(),
        Err(_) => State::with_status(Status::Fail),
    }
}

/// What to serve after a re-read: the file's state, or FAIL if the file
/// was read and is invalid; or, if it could not be read at all (which a
/// later read may fix), the problem, and the last good state stays served.
pub fn after_reread(loaded: &Result<State, Problem>) -> Result<State, &Problem> {
    match loaded {
        Err(problem) if problem.is_transient() => Err(problem),
        _ => Ok(at_start(loaded)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_state_or_fail() {
        let drain = State {
            weight: Some(50),
            ..State::with_status(Status::Drain)
        };
        let fail = State::with_status(Status::Fail);
        // (read, at start, after a re-read; None: keep the last good state)
        let cases = [
            (Ok(drain.clone()), &drain, Some(&drain)),
            (Ok(fail.clone()), &fail, Some(&fail)),
            (Err(Problem::Missing), &fail, Some(&fail)),
            (Err(Problem::MissingStatus), &fail, Some(&fail)),
            (Err(Problem::NotObject), &fail, Some(&fail)),
            (Err(Problem::Unreadable("EMFILE".into())), &fail, None),
        ];
        for (loaded, start, reread) in cases {
            assert_eq!(&at_start(&loaded), start, "{loaded:?}");
            assert_eq!(after_reread(&loaded).ok().as_ref(), reread, "{loaded:?}");
        }
    }
}
