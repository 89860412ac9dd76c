//! The in-flight epochs of `rust/thin/io_epochs.rs` (the worker's barrier
//! before unmapping or moving a block): a ticket is drained exactly when
//! every bio counted before it has completed, whatever bios come after,
//! and the completion that drains it asks for the worker.

use dm_thin_host::io_epochs::{IoEpochs, SLOTS};
use dm_thin_host::rng::Rng;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

#[test]
fn nothing_in_flight_needs_no_ticket() {
    let io = IoEpochs::new();
    assert!(io.barrier().is_none());
    let (e, _) = io.enter();
    assert!(!io.exit(e));
    assert!(io.barrier().is_none());
}

#[test]
fn ticket_waits_for_earlier_bios_only() {
    let io = IoEpochs::new();
    let (a, _) = io.enter();
    let (b, _) = io.enter();
    let t = io.barrier().expect("bios in flight");
    io.set_parked(true);
    // Later bios do not lengthen the wait.
    let (c, _) = io.enter();
    assert!(!io.drained(t));
    assert!(!io.exit(a));
    assert!(!io.drained(t));
    assert!(io.exit(b), "the last bio of the ticket's epoch wakes the worker");
    assert!(io.drained(t));
    assert!(!io.exit(c) || io.drained(t));
}

#[test]
fn tickets_of_many_epochs() {
    // More barriers than slots, with a bio held from the first: the epochs
    // stop advancing rather than reuse its slot, and every ticket waits.
    let io = IoEpochs::new();
    let (held, _) = io.enter();
    let mut tickets = Vec::new();
    let mut others = Vec::new();
    for _ in 0..3 * SLOTS {
        let (e, _) = io.enter();
        others.push(e);
        tickets.push(io.barrier().expect("in flight"));
    }
    for e in others {
        let _ = io.exit(e);
    }
    assert!(tickets.iter().all(|&t| !io.drained(t)), "the held bio counts for every ticket");
    let _ = io.exit(held);
    assert!(tickets.iter().all(|&t| io.drained(t)));
}

#[test]
fn concurrent_bios_and_barriers() {
    // Two threads count bios (enter, mark live, unmark, end its life by
    // bumping its generation, exit) while this one, as the worker, takes
    // tickets: a drained ticket means every bio seen live before the
    // barrier has ended that life.
    const BIOS: usize = 64;
    let io = Arc::new(IoEpochs::new());
    let live: Arc<Vec<AtomicBool>> = Arc::new((0..BIOS * 2).map(|_| AtomicBool::new(false)).collect());
    let gen: Arc<Vec<AtomicUsize>> = Arc::new((0..BIOS * 2).map(|_| AtomicUsize::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..2 {
        let (io, live, gen, stop) = (io.clone(), live.clone(), gen.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(12345 + t as u64);
            while !stop.load(SeqCst) {
                let i = t * BIOS + rng.below(BIOS as u64) as usize;
                let (e, _) = io.enter();
                live[i].store(true, SeqCst);
                std::hint::spin_loop();
                live[i].store(false, SeqCst);
                gen[i].fetch_add(1, SeqCst);
                let _ = io.exit(e);
            }
        }));
    }
    while gen.iter().all(|g| g.load(SeqCst) == 0) {
        std::thread::yield_now();
    }
    let mut waited = 0;
    for _ in 0..200_000 {
        // A bio seen live between two equal reads of its generation is in
        // the life that generation numbers (entered before the barrier).
        let before: Vec<(usize, usize)> = (0..BIOS * 2)
            .filter_map(|i| {
                let g = gen[i].load(SeqCst);
                let l = live[i].load(SeqCst);
                (l && gen[i].load(SeqCst) == g).then_some((i, g))
            })
            .collect();
        if let Some(t) = io.barrier() {
            waited += 1;
            while !io.drained(t) {
                std::hint::spin_loop();
            }
        }
        for (i, g) in before {
            assert!(gen[i].load(SeqCst) > g, "bio {i} was live before the barrier and is not done");
        }
    }
    stop.store(true, SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    assert!(waited > 0, "the barrier never had bios to wait for");
    assert!(io.barrier().is_none(), "every bio uncounted");
}
