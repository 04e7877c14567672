//! The workers that run requests off the event loop: a fixed pool of compute threads (one
//! per core by default) for long computations, and a cached pool of network threads for
//! requests that wait on another server (relays), so waiting never occupies a compute
//! thread. A finished job goes back to the loop through a completion queue and the loop's
//! `mio::Waker`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use mio::Waker;

use super::connection::{Job, JobDone};
use crate::session::Placement;

/// How long an idle network thread waits for work before it exits, unless told otherwise.
pub const NETWORK_THREAD_IDLE: Duration = Duration::from_secs(10);

/// Which connection a job belongs to: the slab key and the connection's unique id (a key
/// may be reused by a newer connection before an old job finishes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOwner {
    pub key: usize,
    pub id: u64,
}

/// How a job ended.
pub enum Completion {
    Done(JobDone),
    /// The job panicked: a bug, reported and contained to its connection.
    Panicked(String),
}

type Queue = Arc<Mutex<Vec<(JobOwner, Completion)>>>;

/// A compute job on its way to a worker, with the ticket that counts it in flight.
type ComputeJob = (JobOwner, Job, InFlightTicket);

/// Counts the compute jobs submitted and not yet finished.
#[derive(Clone, Default)]
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// Counts one more job until the returned ticket is dropped.
    fn ticket(&self) -> InFlightTicket {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightTicket(Arc::clone(&self.0))
    }

    fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

/// One job in flight: dropping the ticket counts the job done, however it ended.
struct InFlightTicket(Arc<AtomicUsize>);

impl Drop for InFlightTicket {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct WorkerPool {
    sender: Option<Sender<ComputeJob>>,
    threads: Vec<JoinHandle<()>>,
    computing: InFlight,
    completed: Queue,
    waker: Arc<Waker>,
    network: NetworkPool,
}

/// Threads for jobs that wait on the network: one per job in flight, kept a while when idle.
struct NetworkPool {
    sender: Sender<(JobOwner, Job)>,
    /// Every network thread receives from a clone of this; a job wakes one idle thread.
    receiver: Receiver<(JobOwner, Job)>,
    /// Threads waiting for a job and not yet claimed by a submitted one.
    idle: Arc<AtomicUsize>,
    /// How long an idle thread waits for a job before it exits.
    idle_timeout: Duration,
}

impl WorkerPool {
    pub fn new(workers: usize, network_idle: Duration, waker: Arc<Waker>) -> std::io::Result<Self> {
        // A multi-consumer channel: a job wakes one idle worker. (Workers sharing a std
        // `Receiver` behind a mutex woke a second one per job, to take the mutex and wait.)
        let (sender, receiver) = crossbeam_channel::unbounded::<ComputeJob>();
        let completed: Queue = Arc::default();
        let computing = InFlight::default();
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let receiver = receiver.clone();
            let completed = Arc::clone(&completed);
            let waker = Arc::clone(&waker);
            let thread = std::thread::Builder::new()
                .name(format!("tensor-rpc-worker-{i}"))
                .spawn(move || work(&receiver, &completed, &waker))?;
            threads.push(thread);
        }
        let (network_sender, network_receiver) = crossbeam_channel::unbounded();
        let network = NetworkPool {
            sender: network_sender,
            receiver: network_receiver,
            idle: Arc::default(),
            idle_timeout: network_idle,
        };
        Ok(WorkerPool { sender: Some(sender), threads, computing, completed, waker, network })
    }

    pub fn submit(&self, owner: JobOwner, job: Job) {
        if job.placement() == Placement::Network {
            return self.submit_network(owner, job);
        }
        if let Some(sender) = &self.sender
            && sender.send((owner, job, self.computing.ticket())).is_err()
        {
            log::error!("worker pool is gone; job of connection {} dropped", owner.id);
        }
    }

    /// Whether a compute job is queued or running: the cores are then busy with it.
    pub fn computing(&self) -> bool {
        self.computing.any()
    }

    fn submit_network(&self, owner: JobOwner, job: Job) {
        let claimed_idle = self
            .network
            .idle
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !claimed_idle {
            let receiver = self.network.receiver.clone();
            let completed = Arc::clone(&self.completed);
            let waker = Arc::clone(&self.waker);
            let idle = Arc::clone(&self.network.idle);
            let timeout = self.network.idle_timeout;
            let spawned = std::thread::Builder::new()
                .name("tensor-rpc-network".into())
                .spawn(move || network_work(&receiver, &completed, &waker, &idle, timeout));
            if let Err(e) = spawned {
                log::error!("cannot start a network thread: {e}");
            }
        }
        if self.network.sender.send((owner, job)).is_err() {
            log::error!("network pool is gone; job of connection {} dropped", owner.id);
        }
    }

    /// Jobs finished since the last call.
    pub fn take_completed(&self) -> Vec<(JobOwner, Completion)> {
        std::mem::take(&mut *self.completed.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.sender = None; // workers see the channel close and exit
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn work(receiver: &Receiver<ComputeJob>, completed: &Queue, waker: &Waker) {
    loop {
        let next = receiver.recv();
        let Ok((owner, job, ticket)) = next else { return };
        run(owner, job, completed);
        // Counted done before the loop is woken, so the woken loop sees it.
        drop(ticket);
        wake(waker);
    }
}

/// A network thread: runs jobs while they come, exits after a while without any.
fn network_work(
    receiver: &Receiver<(JobOwner, Job)>,
    completed: &Queue,
    waker: &Waker,
    idle: &AtomicUsize,
    idle_timeout: Duration,
) {
    loop {
        let next = receiver.recv_timeout(idle_timeout);
        match next {
            Ok((owner, job)) => {
                run(owner, job, completed);
                wake(waker);
                idle.fetch_add(1, Ordering::SeqCst);
            }
            Err(RecvTimeoutError::Timeout) => {
                // Leave only if no submitted job has claimed this thread meanwhile.
                if idle
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Runs one job and queues its completion for the event loop (which the caller wakes).
fn run(owner: JobOwner, job: Job, completed: &Queue) {
    let completion = match catch_unwind(AssertUnwindSafe(|| job.run())) {
        Ok(done) => Completion::Done(done),
        Err(panic) => Completion::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into()),
        ),
    };
    completed.lock().unwrap_or_else(|e| e.into_inner()).push((owner, completion));
}

fn wake(waker: &Waker) {
    if let Err(e) = waker.wake() {
        log::error!("cannot wake the event loop: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_in_flight_until_its_ticket_is_dropped() {
        let in_flight = InFlight::default();
        assert!(!in_flight.any());
        let first = in_flight.ticket();
        let second = in_flight.clone().ticket();
        drop(first);
        assert!(in_flight.any(), "one job is still in flight");
        drop(second);
        assert!(!in_flight.any());
    }

    #[test]
    fn a_ticket_sent_to_a_gone_receiver_counts_its_job_done() {
        let in_flight = InFlight::default();
        let (sender, receiver) = crossbeam_channel::unbounded::<InFlightTicket>();
        drop(receiver);
        assert!(sender.send(in_flight.ticket()).is_err());
        assert!(!in_flight.any());
    }
}
