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
//! Memory for hashing is therefore at most `threads × 19 MiB` during a
//! burst of sign-ins, and none when idle.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

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

/// The verifier cannot take more work right now (or has stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

pub struct PasswordVerifier {
    queue: SyncSender<Job>,
}

impl std::fmt::Debug for PasswordVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordVerifier")
    }
}

impl PasswordVerifier {
    /// Starts `threads` verifier threads with room for `queue` waiting
    /// checks.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("password-{i}"))
                .spawn(move || work(&receiver))?;
        }
        Ok(Self { queue: sender })
    }

    /// Whether `candidate` matches `hash`; `Err(Busy)` when too many checks
    /// are already waiting.
    pub async fn verify(&self, hash: PasswordHash, candidate: String) -> Result<bool, Busy> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Job {
            hash,
            candidate,
            reply,
        }) {
            Ok(()) => answer.await.map_err(|_| Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }
}

/// Capacity of a thread's hashing buffer, in 1 KiB blocks: 33 MiB, above
/// glibc's largest mmap threshold (32 MiB), so the buffer is always its own
/// mapping and freeing it returns the memory to the system at once. (A
/// 19 MiB buffer would stay in the heap after the first free, since glibc
/// raises the threshold to the size of the chunk it just freed.) Only the
/// 19 MiB Argon2 touches count as resident.
const BUFFER_BLOCKS: usize = 33 * 1024;

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(guard) = receiver.lock() else {
                return;
            };
            match guard.recv() {
                Ok(job) => job,
                // Every sender is gone: the server is shutting down.
                Err(_) => return,
            }
        };
        // One buffer serves a burst of checks and is freed when the queue
        // runs dry, so an idle server holds no hashing memory.
        let mut memory = Vec::with_capacity(BUFFER_BLOCKS);
        let mut next = Some(job);
        while let Some(job) = next {
            let matches = job.hash.verify_in(&job.candidate, &mut memory);
            let _ = job.reply.send(matches);
            next = receiver.lock().ok().and_then(|guard| guard.try_recv().ok());
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
                    .verify(hash.clone(), "correct horse battery staple".into())
                    .await,
                Ok(true)
            );
            assert_eq!(verifier.verify(hash.clone(), "wrong".into()).await, Ok(false));
            // One running and one queued: a third at the same moment is refused.
            let (a, b, c) = tokio::join!(
                verifier.verify(hash.clone(), "x".into()),
                verifier.verify(hash.clone(), "y".into()),
                verifier.verify(hash.clone(), "z".into()),
            );
            assert!([a, b, c].contains(&Err(Busy)));
        });
    }
}
