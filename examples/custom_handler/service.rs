//! service.rs - the example's service: what a user's crate writes to put its own work
//! behind persephone. Two request types, declared in code:
//!
//! - `HASH` (type 1, short): replies with the 64-bit FNV-1a hash of the payload
//!   (8 bytes, little-endian).
//! - `PRIMES` (type 2, long): the payload is a little-endian u64 `n` (at most
//!   [`MAX_N`]); replies with the number of primes `<= n` (u64, little-endian),
//!   counted with a sieve whose buffer each worker keeps (per-worker state: no lock,
//!   no allocation once it has grown).
//!
//! `psp-client`'s `spin` payload is a u64 too, so its presets drive this service as
//! is: with `--workload high-bimodal`, SHORT requests (type 1) are hashed and LONG
//! ones (type 2, payload 100 000) count the 9 592 primes below 100 000, which takes
//! about as long as the preset's 100 µs (80–90 µs on the development machine, as
//! DARC's profile measured it).

use persephone::config::RequestType;
use persephone::{Handler, HandlerError, Request};

/// Wire id of the HASH type.
pub const HASH: u32 = 1;
/// Wire id of the PRIMES type.
pub const PRIMES: u32 = 2;
/// Largest `n` a PRIMES request may ask for (bounds a worker's time and memory).
pub const MAX_N: u64 = 10_000_000;

/// The types this service knows, for `App::request_types`.
pub fn request_types() -> [RequestType; 2] {
    [
        RequestType::new(HASH, "HASH"),
        RequestType::new(PRIMES, "PRIMES"),
    ]
}

/// 64-bit FNV-1a.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One worker's handler: its sieve buffer and a count of what it served.
#[derive(Debug, Default)]
pub struct Service {
    /// The sieve of the last PRIMES request; reused.
    composite: Vec<bool>,
    pub served: u64,
}

impl Service {
    pub fn new() -> Service {
        Service::default()
    }

    /// The number of primes `<= n`: a sieve over the odd numbers (`composite[i]` is
    /// about `2i + 1`).
    pub fn count_primes(&mut self, n: u64) -> u64 {
        if n < 2 {
            return 0;
        }
        let n = n as usize;
        let odd = (n - 1) / 2; // odd numbers 3..=n are indices 1..=odd
        self.composite.clear();
        self.composite.resize(odd + 1, false);
        let mut i = 1;
        while (2 * i + 1) * (2 * i + 1) <= n {
            if !self.composite[i] {
                let p = 2 * i + 1;
                let mut j = (p * p - 1) / 2;
                while j <= odd {
                    self.composite[j] = true;
                    j += p;
                }
            }
            i += 1;
        }
        // 2, and every odd number left unmarked.
        1 + self.composite[1..].iter().filter(|&&c| !c).count() as u64
    }
}

impl Handler for Service {
    fn handle(&mut self, req: &mut Request<'_>) -> Result<(), HandlerError> {
        let answer = match req.type_id() {
            HASH => fnv1a(req.payload()),
            PRIMES => {
                // Anything from the network may be wrong: refuse it, never panic on it.
                let bytes: [u8; 8] = req
                    .payload()
                    .try_into()
                    .map_err(|_| HandlerError::BadRequest)?;
                let n = u64::from_le_bytes(bytes);
                if n > MAX_N {
                    return Err(HandlerError::BadRequest);
                }
                self.count_primes(n)
            }
            _ => return Err(HandlerError::BadRequest),
        };
        self.served += 1;
        // The reply overwrites the request in place (8 bytes always fit a buffer).
        req.reply(&answer.to_le_bytes())
            .map_err(|_| HandlerError::Failed)
    }
}
