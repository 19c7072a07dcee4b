//! The poison-tolerant lock every shared state of dnslb uses.
//!
//! dnslb's mutexes guard counters and small states that are changed in one
//! assignment, so a thread that panicked while holding one cannot have left
//! it half written. Taking the guard of a poisoned mutex is then right, and
//! keeps one panicking thread from taking the whole server down with it.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, also when another thread panicked while holding it.
///
/// ```
/// use std::sync::Mutex;
/// let counter = Mutex::new(1);
/// *dnslb::sync::lock(&counter) += 1;
/// assert_eq!(*dnslb::sync::lock(&counter), 2);
/// ```
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_still_locks() {
        let mutex = Mutex::new(7);
        let _ = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _guard = mutex.lock().unwrap();
                    panic!("poisons the mutex");
                })
                .join()
        });
        assert!(mutex.is_poisoned());
        assert_eq!(*lock(&mutex), 7);
    }
}
