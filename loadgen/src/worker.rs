//! Thread per core: each worker thread is pinned to one CPU and drives its agents (producer
//! and consumer connections) from one poll loop over non-blocking sockets. It reports what
//! it measured to the main thread once a second.

use std::os::fd::RawFd;
use std::sync::mpsc::Sender;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::stats::{Interval, Report};

/// The run's clock, shared by every thread: nanoseconds since the start, and the wall clock
/// at the start (payload timestamps are wall-clock, so another process can read them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    start_wall_ns: u64,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            start: Instant::now(),
            start_wall_ns: wall_ns(),
        }
    }
    pub(crate) fn start_instant(&self) -> Instant {
        self.start
    }
    pub(crate) fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    /// The wall-clock time of run time `ns`.
    pub(crate) fn wall_of(&self, ns: u64) -> u64 {
        self.start_wall_ns + ns
    }
}

pub(crate) fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// One producer or consumer connection driven by a worker.
pub(crate) trait Agent: Send {
    /// Reads responses, sends what is due, flushes. Returns when it next needs to run
    /// (None: only when its socket is ready).
    fn poll(&mut self, now_ns: u64, iv: &mut Interval) -> Option<u64>;
    /// Adds the sockets to wait on, each with whether to wait for writability too.
    fn io_interest(&self, interest: &mut Vec<(RawFd, bool)>);
    /// True once its run time is over and nothing is in flight.
    fn finished(&self, now_ns: u64) -> bool;
}

const NS_PER_S: u64 = 1_000_000_000;

/// Runs `agents` until all finished or `hard_stop_ns`; reports each second and at the end.
pub(crate) fn run_worker(
    cpu: Option<usize>,
    clock: Clock,
    mut agents: Vec<Box<dyn Agent>>,
    hard_stop_ns: u64,
    tx: Sender<Report>,
) {
    if let Some(cpu) = cpu {
        pin_to_cpu(cpu);
    }
    let mut iv = Interval::new();
    let mut second = clock.now_ns() / NS_PER_S;
    let mut pollfds: Vec<libc::pollfd> = Vec::with_capacity(agents.len());
    let mut interest: Vec<(RawFd, bool)> = Vec::with_capacity(agents.len());
    loop {
        let now = clock.now_ns();
        if now >= (second + 1) * NS_PER_S {
            let done = std::mem::replace(&mut iv, Interval::new());
            let _ = tx.send(Report::Second {
                second,
                interval: done,
            });
            second = now / NS_PER_S;
        }
        let mut next = (second + 1) * NS_PER_S;
        for a in agents.iter_mut() {
            if let Some(t) = a.poll(now, &mut iv) {
                next = next.min(t);
            }
        }
        let now = clock.now_ns();
        if now >= hard_stop_ns || agents.iter().all(|a| a.finished(now)) {
            break;
        }
        next = next.min(hard_stop_ns);
        interest.clear();
        for a in &agents {
            a.io_interest(&mut interest);
        }
        pollfds.clear();
        for &(fd, write) in &interest {
            let events = libc::POLLIN | if write { libc::POLLOUT } else { 0 };
            pollfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
        }
        let wait_ns = next.saturating_sub(now);
        if wait_ns > 0 {
            let ts = libc::timespec {
                tv_sec: (wait_ns / NS_PER_S) as libc::time_t,
                tv_nsec: (wait_ns % NS_PER_S) as libc::c_long,
            };
            // SAFETY: pollfds is a valid array of pollfd of the given length; ts lives across
            // the call; a null sigmask keeps the thread's signal mask.
            unsafe {
                libc::ppoll(
                    pollfds.as_mut_ptr(),
                    pollfds.len() as libc::nfds_t,
                    &ts,
                    std::ptr::null(),
                );
            }
        }
    }
    let _ = tx.send(Report::Second {
        second,
        interval: std::mem::replace(&mut iv, Interval::new()),
    });
    let _ = tx.send(Report::Done { interval: iv });
}

/// The CPUs this process may run on (all of them, counted, if the kernel will not say).
pub(crate) fn allowed_cpus() -> Vec<usize> {
    match core_affinity::get_core_ids() {
        Some(cores) if !cores.is_empty() => cores.into_iter().map(|core| core.id).collect(),
        _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

fn pin_to_cpu(cpu: usize) {
    // Best effort: an unpinned worker still measures, only less steadily.
    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
}
