//! The runtime property the log's tasks rely on: an executor with runnable tasks never goes
//! to sleep. glommio-ng 0.12.0 broke it (the storage tests hung in CI); third_party/README.md
//! describes the fix this checks.

use std::time::Duration;

/// A preemption timer this short often expires between the executor's I/O poll and its
/// first look at the task queues, the moment 0.12.0 took for "nothing to run" and parked
/// for good (this test hung 3 runs in 3 against the unpatched crate; a similar body hung
/// 4 runs in 5 at 20 µs, 1 in 6 at 30 µs and none at 50 µs or more).
const PREEMPT: Duration = Duration::from_micros(20);

#[test]
fn an_executor_with_runnable_tasks_does_not_sleep() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let done = glommio::LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .preempt_timer(PREEMPT)
            .spawn(|| async {
                let mut finished = 0;
                for _ in 0..2000 {
                    // A task that stays runnable: it yields back to the executor 100 times.
                    let task = glommio::spawn_local(async {
                        for _ in 0..100 {
                            glommio::executor().yield_now().await;
                        }
                        1
                    });
                    finished += task.await;
                }
                finished
            })
            .expect("executor")
            .join();
        let _ = tx.send(done.ok());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(finished) => assert_eq!(finished, Some(2000), "every task ran to its end"),
        Err(_) => panic!("the executor slept with runnable tasks (no progress in 30 s)"),
    }
}
