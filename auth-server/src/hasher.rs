//! Password verification on a small, fixed set of threads.
//!
//! Argon2id with our parameters needs 19 MiB per check. Running checks on
//! the general blocking pool would let a burst of sign-in posts run
//! hundreds at once (gigabytes, and every database call stuck behind them),
//! and glibc keeps each thread's freed 19 MiB around afterwards. Here a
//! fixed number of threads (default: the number of cores) each use one
//! buffer for a burst of checks and free it when the queue is empty, and a
//! short bounded queue sits in front of them: when it is full, sign-in
//! answers "busy, try again" at once instead of queueing without limit.
//! There are two such queues: checks for clean addresses and accounts are
//! always taken first, and only suspects (with failures still counting)
//! are turned away when theirs is full.
//! Memory for hashing is therefore at most `threads × 19 MiB` during a
//! burst of sign-ins, and none when idle.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use crate::domain::PasswordHash;

struct Job {
    hash: PasswordHash,
    candidate: String,
    reply: oneshot::Sender<bool>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job([redacted])")
    }
}

/// Which queue a check waits in. Checks for clean addresses and accounts
/// (no failures still counting) always go first, so a sprayer filling the
/// queue with guesses cannot make a real user wait behind them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Clean,
    Suspect,
}

/// The verifier cannot take more work right now (or has stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

#[derive(Default)]
struct Queues {
    clean: VecDeque<Job>,
    suspect: VecDeque<Job>,
    stopped: bool,
}

impl Queues {
    fn next(&mut self) -> Option<Job> {
        self.clean.pop_front().or_else(|| self.suspect.pop_front())
    }
}

struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
    capacity: usize,
}

pub struct PasswordVerifier {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PasswordVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordVerifier")
    }
}

impl Drop for PasswordVerifier {
    fn drop(&mut self) {
        self.shared
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopped = true;
        self.shared.ready.notify_all();
    }
}

impl PasswordVerifier {
    /// Starts `threads` verifier threads with room for `queue` waiting
    /// checks of each priority.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues::default()),
            ready: Condvar::new(),
            capacity: queue,
        });
        for i in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || work(&shared))?;
        }
        Ok(Self { shared })
    }

    /// Whether `candidate` matches `hash`; `Err(Busy)` when too many checks
    /// of this priority are already waiting.
    pub async fn verify(
        &self,
        hash: PasswordHash,
        candidate: String,
        priority: Priority,
    ) -> Result<bool, Busy> {
        let (reply, answer) = oneshot::channel();
        {
            let mut queues = self.shared.queues.lock().unwrap_or_else(|p| p.into_inner());
            let queue = match priority {
                Priority::Clean => &mut queues.clean,
                Priority::Suspect => &mut queues.suspect,
            };
            if queue.len() >= self.shared.capacity {
                return Err(Busy);
            }
            queue.push_back(Job {
                hash,
                candidate,
                reply,
            });
        }
        self.shared.ready.notify_one();
        answer.await.map_err(|_| Busy)
    }
}

/// Capacity of a thread's hashing buffer, in 1 KiB blocks: 33 MiB, above
/// glibc's largest mmap threshold (32 MiB), so the buffer is always its own
/// mapping and freeing it returns the memory to the system at once. (A
/// 19 MiB buffer would stay in the heap after the first free, since glibc
/// raises the threshold to the size of the chunk it just freed.) Only the
/// 19 MiB Argon2 touches count as resident.
const BUFFER_BLOCKS: usize = 33 * 1024;

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut queues = shared.queues.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if queues.stopped {
                    return;
                }
                if let Some(job) = queues.next() {
                    break job;
                }
                queues = shared.ready.wait(queues).unwrap_or_else(|p| p.into_inner());
            }
        };
        // One buffer serves a burst of checks and is freed when the queues
        // run dry, so an idle server holds no hashing memory.
        let mut memory = Vec::with_capacity(BUFFER_BLOCKS);
        let mut next = Some(job);
        while let Some(job) = next {
            let matches = job.hash.verify_in(&job.candidate, &mut memory);
            let _ = job.reply.send(matches);
            next = shared.queues.lock().unwrap_or_else(|p| p.into_inner()).next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Password, Username};

    #[test]
    fn verifies_on_its_threads_and_refuses_when_full() {
        let user = Username::parse("alice").unwrap();
        let hash =
            PasswordHash::create(&Password::parse("correct horse battery staple", &user).unwrap()).unwrap();
        let verifier = PasswordVerifier::start(1, 1).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            assert_eq!(
                verifier
                    .verify(
                        hash.clone(),
                        "correct horse battery staple".into(),
                        Priority::Clean
                    )
                    .await,
                Ok(true)
            );
            assert_eq!(
                verifier
                    .verify(hash.clone(), "wrong".into(), Priority::Suspect)
                    .await,
                Ok(false)
            );
            // One running and one queued: a third at the same moment is refused.
            let (a, b, c) = tokio::join!(
                verifier.verify(hash.clone(), "x".into(), Priority::Suspect),
                verifier.verify(hash.clone(), "y".into(), Priority::Suspect),
                verifier.verify(hash.clone(), "z".into(), Priority::Suspect),
            );
            assert!([a, b, c].contains(&Err(Busy)));
        });
    }
}
