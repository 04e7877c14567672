//! The worker pool that runs long requests off the event loop. A finished job goes back to
//! the loop through a completion queue and the loop's `mio::Waker`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use mio::Waker;

use super::connection::{Job, JobDone};

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

pub struct WorkerPool {
    sender: Option<Sender<(JobOwner, Job)>>,
    threads: Vec<JoinHandle<()>>,
    completed: Queue,
}

impl WorkerPool {
    pub fn new(workers: usize, waker: Arc<Waker>) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<(JobOwner, Job)>();
        let receiver = Arc::new(Mutex::new(receiver));
        let completed: Queue = Arc::default();
        let mut threads = Vec::new();
        for i in 0..workers.max(1) {
            let receiver = Arc::clone(&receiver);
            let completed = Arc::clone(&completed);
            let waker = Arc::clone(&waker);
            let thread = std::thread::Builder::new()
                .name(format!("tensor-rpc-worker-{i}"))
                .spawn(move || work(&receiver, &completed, &waker))?;
            threads.push(thread);
        }
        Ok(WorkerPool { sender: Some(sender), threads, completed })
    }

    pub fn submit(&self, owner: JobOwner, job: Job) {
        if let Some(sender) = &self.sender
            && sender.send((owner, job)).is_err()
        {
            log::error!("worker pool is gone; job of connection {} dropped", owner.id);
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

fn work(receiver: &Mutex<Receiver<(JobOwner, Job)>>, completed: &Queue, waker: &Waker) {
    loop {
        let next = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((owner, job)) = next else { return };
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
        if let Err(e) = waker.wake() {
            log::error!("cannot wake the event loop: {e}");
        }
    }
}
