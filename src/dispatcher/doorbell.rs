//! doorbell.rs - lets workers wake a dispatcher that sleeps in `poll` (idle: park).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};

use crossbeam_utils::CachePadded;

/// An eventfd the sleeping dispatcher polls beside its socket, and a flag saying
/// whether it sleeps. Disabled (every call a no-op) unless the dispatcher parks.
#[derive(Debug)]
pub struct Doorbell {
    armed: CachePadded<AtomicBool>,
    fd: Option<OwnedFd>,
}

impl Doorbell {
    /// A doorbell that does nothing (the dispatcher never sleeps).
    pub fn disabled() -> Doorbell {
        Doorbell {
            armed: CachePadded::new(AtomicBool::new(false)),
            fd: None,
        }
    }

    /// A working doorbell.
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: eventfd takes no pointers; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Doorbell {
            armed: CachePadded::new(AtomicBool::new(false)),
            // SAFETY: `fd` is a fresh descriptor that nothing else owns.
            fd: Some(unsafe { OwnedFd::from_raw_fd(fd) }),
        })
    }

    /// The descriptor to poll, if enabled.
    pub fn fd(&self) -> Option<RawFd> {
        self.fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// The dispatcher is about to sleep: after this, check for work once more.
    pub fn arm(&self) {
        if self.fd.is_some() {
            self.armed.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
        }
    }

    /// The dispatcher woke up.
    pub fn disarm(&self) {
        if let Some(fd) = &self.fd {
            self.armed.store(false, Ordering::Relaxed);
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into a u64 from a nonblocking eventfd we own.
            unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
    }

    /// Wakes the dispatcher if it sleeps (workers call this after each completion).
    #[inline]
    pub fn ring(&self) {
        if let Some(fd) = &self.fd {
            fence(Ordering::SeqCst);
            if self.armed.load(Ordering::Relaxed) {
                self.armed.store(false, Ordering::Relaxed);
                let v = 1u64;
                // SAFETY: writes 8 bytes from a u64 to an eventfd we own.
                unsafe { libc::write(fd.as_raw_fd(), (&v as *const u64).cast(), 8) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn rings_only_when_armed() {
        let d = Doorbell::new().unwrap();
        let fd = d.fd().unwrap();
        d.ring();
        assert!(!readable(fd));
        d.arm();
        d.ring();
        assert!(readable(fd));
        d.disarm();
        assert!(!readable(fd));
        assert!(Doorbell::disabled().fd().is_none());
    }
}
