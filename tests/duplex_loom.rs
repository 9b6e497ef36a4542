//! Model-checks `persephone::duplex`'s memory orderings with loom: every interleaving
//! (and every weak-memory outcome loom models) of a dispatcher and a worker thread.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test --release --test duplex_loom
//! ```
//!
//! Without `--cfg loom` this file is empty. Values are `loom::sync::Arc`s: a value read
//! before it is written shows up as a wrong value, one dropped twice as a double free,
//! and one never dropped as a leak, which loom reports at the end of the model.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use persephone::duplex;

/// A worker thread that expects jobs 0, 1, ... `n - 1` in order, one at a time, and
/// completes each with its value plus 100.
fn one_job_at_a_time(
    mut w: duplex::WorkerEnd<Arc<usize>, Arc<usize>>,
    n: usize,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut next = 0;
        while next < n {
            match w.take() {
                Some(j) => {
                    assert_eq!(*j, next);
                    w.complete(Arc::new(*j + 100));
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
    })
}

/// One slot used for several round trips: every job reaches the worker once and in
/// order, and every completion comes back once, carrying what the worker wrote. The
/// positions start just below `usize::MAX`, so they (and the stamps) wrap around.
#[test]
fn one_slot_carries_round_trips_across_laps() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        const N: usize = 3;
        let (mut d, w) = duplex::channel_from::<Arc<usize>, Arc<usize>>(1, usize::MAX - 1);
        let t = one_job_at_a_time(w, N);
        for i in 0..N {
            d.push(Arc::new(i)).expect("the slot is free");
            let c = loop {
                match d.pop() {
                    Some(c) => break c,
                    None => thread::yield_now(),
                }
            };
            assert_eq!(*c, i + 100);
        }
        t.join().unwrap();
    });
}

/// The dispatcher's refill, modelled: with job 0 out on `d` (to a worker running
/// [`one_job_at_a_time`]), each completion `pop_then` collects sends the next job of
/// `n`, with no test for room; the worker sees every job once, in order, and each
/// completion comes back once. `single`: through `pop_then_in::<true, _>` (`d` must have one
/// slot).
fn refill_each_completion(
    d: &mut duplex::DispatchEnd<Arc<usize>, Arc<usize>>,
    n: usize,
    single: bool,
) {
    assert!(!single || d.is_single());
    for i in 0..n {
        let sent = loop {
            let then = |c: Arc<usize>| {
                assert_eq!(*c, i + 100);
                if i + 1 < n {
                    Ok(Arc::new(i + 1))
                } else {
                    Err(())
                }
            };
            let r = if single {
                // SAFETY: one slot (asserted above).
                unsafe { d.pop_then_in::<true, _>(then) }
            } else {
                d.pop_then(then)
            };
            match r {
                Some(sent) => break sent,
                None => thread::yield_now(),
            }
        };
        assert_eq!(sent.is_ok(), i + 1 < n);
        assert_eq!(d.outstanding(), usize::from(i + 1 < n));
    }
}

/// One slot: each job goes into the slot its predecessor's completion freed.
#[test]
fn a_refill_goes_into_the_slot_its_completion_freed() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let (mut d, w) = duplex::channel_from::<Arc<usize>, Arc<usize>>(1, usize::MAX - 1);
        let t = one_job_at_a_time(w, 3);
        d.push(Arc::new(0)).expect("the slot is free");
        refill_each_completion(&mut d, 3, false);
        t.join().unwrap();
    });
}

/// The dispatcher's single-slot entry points (c-FCFS, DARC, SJF, EDF), which look at
/// the slot without testing for a job out, with the worker running throughout: a look
/// at the never-used slot (positions from `usize::MAX`, whose done stamp is 0) and at
/// the slot freed by a completion taken without a refill both find nothing; job 0's
/// completion refills job 1 into the slot, job 2 goes in by a push; every job reaches
/// the worker once and in order, and each completion comes back once.
#[test]
fn the_single_slot_path_sees_each_job_once_and_free_slots_empty() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let (mut d, w) = duplex::channel_from::<Arc<usize>, Arc<usize>>(1, usize::MAX);
        assert!(d.is_single());
        let t = one_job_at_a_time(w, 3);
        // A look that must find nothing: a completion there would be dropped here,
        // and one read from a free slot is no `Arc` loom knows.
        let look = |d: &mut duplex::DispatchEnd<Arc<usize>, Arc<usize>>| {
            // SAFETY (this and every call below): the channel has one slot.
            unsafe { d.pop_then_in::<true, _>(|_| Err::<Arc<usize>, ()>(())) }.is_none()
        };
        assert!(look(&mut d), "the never-used slot");
        // SAFETY: as above.
        unsafe { d.push_in::<true>(Arc::new(0)) }.expect("the slot is free");
        // Job 0's completion refills job 1; job 1's is taken without a refill.
        refill_each_completion(&mut d, 2, true);
        assert_eq!(d.outstanding(), 0);
        assert!(look(&mut d), "the slot freed, the worker waiting on it");
        // SAFETY: as above.
        unsafe { d.push_in::<true>(Arc::new(2)) }.expect("the slot is free");
        let c = loop {
            match d.pop() {
                Some(c) => break c,
                None => thread::yield_now(),
            }
        };
        assert_eq!(*c, 102);
        t.join().unwrap();
    });
}

/// Room to spare: two slots, one job out, so each job goes into the other slot than
/// the completion collected (the worker may already be looking there).
#[test]
fn a_refill_into_the_other_slot_is_seen_once_and_in_order() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let (mut d, w) = duplex::channel::<Arc<usize>, Arc<usize>>(2);
        let t = one_job_at_a_time(w, 3);
        d.push(Arc::new(0)).expect("a slot is free");
        refill_each_completion(&mut d, 3, false);
        t.join().unwrap();
    });
}

/// Two slots, the worker holding both jobs before it completes them: completions come
/// back in job order, and the dispatcher refills a slot only after collecting it.
#[test]
fn a_worker_holding_two_jobs_completes_them_in_order() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        const N: usize = 4;
        let (mut d, mut w) = duplex::channel::<Arc<usize>, Arc<usize>>(2);
        let t = thread::spawn(move || {
            let mut held = Vec::new();
            let mut done = 0;
            while done < N {
                if held.len() < 2 && done + held.len() < N {
                    if let Some(j) = w.take() {
                        held.push(j);
                        continue;
                    }
                }
                if held.len() == 2 || (!held.is_empty() && done + held.len() == N) {
                    let j = held.remove(0);
                    w.complete(j);
                    done += 1;
                } else {
                    thread::yield_now();
                }
            }
        });
        let (mut sent, mut got) = (0, 0);
        while got < N {
            while sent < N && d.push(Arc::new(sent)).is_ok() {
                sent += 1;
            }
            match d.pop() {
                Some(c) => {
                    assert_eq!(*c, got);
                    got += 1;
                }
                None => thread::yield_now(),
            }
        }
        t.join().unwrap();
    });
}

/// Two jobs out; the worker takes the first if it sees it and either completes it or
/// drops it without a completion (a worker that died holding it), leaves the second,
/// and its end drops, maybe before the dispatcher's. Whatever is left (a job not taken,
/// a completion not collected) is dropped exactly once by the last end, whichever it
/// is, and a job taken and never completed is not dropped again.
fn leftovers(complete: bool) {
    loom::model(move || {
        let (mut d, mut w) = duplex::channel::<Arc<usize>, Arc<usize>>(2);
        d.push(Arc::new(0)).unwrap();
        d.push(Arc::new(1)).unwrap();
        let t = thread::spawn(move || {
            if let Some(j) = w.take() {
                assert_eq!(*j, 0);
                if complete {
                    w.complete(j);
                }
            }
        });
        // Maybe collects that completion, maybe not.
        if let Some(c) = d.pop() {
            assert!(complete && *c == 0);
        }
        drop(d);
        t.join().unwrap();
    });
}

#[test]
fn what_is_left_is_dropped_by_the_last_end() {
    leftovers(true);
}

#[test]
fn a_job_taken_and_never_completed_is_not_dropped_again() {
    leftovers(false);
}
