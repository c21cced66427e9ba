//! The one undo stack of berth's multi-step creations (an OCI container, a pod sandbox, a pod
//! container): each acquired resource pushes the step that releases it; a failure rolls them
//! back newest first, and so does a panic (on drop), unless the creation committed.

/// One release step: what it releases, and how.
type Step = (String, Box<dyn FnOnce() -> Result<(), String>>);

/// Steps that release what a creation acquired so far.
#[derive(Default)]
pub struct Undo {
    steps: Vec<Step>,
}

impl Undo {
    pub fn new() -> Undo {
        Undo::default()
    }

    /// Record how to release `what`.
    pub fn push(
        &mut self,
        what: impl Into<String>,
        f: impl FnOnce() -> Result<(), String> + 'static,
    ) {
        self.steps.push((what.into(), Box::new(f)));
    }

    /// Keep everything: the creation succeeded.
    pub fn commit(mut self) {
        self.steps.clear();
    }

    /// Release everything, newest first; returns each step that failed, with its error.
    pub fn rollback(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        while let Some((what, f)) = self.steps.pop() {
            if let Err(e) = f() {
                failed.push(format!("{what}: {e}"));
            }
        }
        failed
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        self.rollback();
    }
}

/// `error`, followed by what its rollback could not release, if anything.
pub fn describe(error: &dyn std::fmt::Display, failed: &[String]) -> String {
    if failed.is_empty() {
        error.to_string()
    } else {
        format!("{error} (and the rollback failed: {})", failed.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn rolls_back_newest_first_and_reports_failures() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut u = Undo::new();
        for i in 0..3 {
            let l = log.clone();
            u.push(format!("step {i}"), move || {
                l.borrow_mut().push(i);
                if i == 1 { Err("busy".into()) } else { Ok(()) }
            });
        }
        assert_eq!(u.rollback(), vec!["step 1: busy".to_string()]);
        assert_eq!(*log.borrow(), vec![2, 1, 0]);
        assert_eq!(
            describe(&"create failed", &["step 1: busy".into()]),
            "create failed (and the rollback failed: step 1: busy)"
        );
    }

    #[test]
    fn a_panic_rolls_back_and_a_commit_keeps() {
        let log = Rc::new(RefCell::new(0));
        let l = log.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut u = Undo::new();
            u.push("x", move || {
                *l.borrow_mut() += 1;
                Ok(())
            });
            panic!("mid-create");
        }));
        assert!(r.is_err());
        assert_eq!(*log.borrow(), 1);
        let l = log.clone();
        let mut u = Undo::new();
        u.push("y", move || {
            *l.borrow_mut() += 10;
            Ok(())
        });
        u.commit();
        assert_eq!(*log.borrow(), 1);
    }
}
