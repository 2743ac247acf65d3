//! The spool's bookkeeping, free of actors: who the workers are and how
//! loaded each one is ([`Pool`]), and how fast recent answers came
//! ([`Window`]).

use std::time::Duration;

use crate::runtime::Address;

/// How many recent response times the responsiveness window averages.
pub(crate) const WINDOW: usize = 32;

/// One worker the spool knows.
#[derive(Debug)]
struct Member {
    address: Address,
    /// Requests sent to it that it has not answered — those whose caller
    /// has been answered `TimedOut` included: the worker is still busy with
    /// them, so they keep its slot.
    load: u32,
    /// Out of rotation: it gets no new request, but keeps (and answers)
    /// what it holds.
    leaving: bool,
}

/// The workers in rotation and their loads, and the workers that left the
/// rotation but still hold requests.
///
/// [`pick`](Pool::pick) chooses the least-loaded worker in rotation that has
/// room, starting each search one place further round, so that equally
/// loaded workers share the work evenly instead of the first one taking it
/// all.
#[derive(Debug)]
pub(crate) struct Pool {
    members: Vec<Member>,
    /// Requests one worker may hold at once.
    capacity: u32,
    /// Where the next search starts.
    next: usize,
}

impl Pool {
    /// An empty pool whose workers each hold at most `capacity` requests.
    pub(crate) fn new(capacity: u32) -> Self {
        Pool {
            members: Vec::new(),
            capacity: capacity.max(1),
            next: 0,
        }
    }

    /// Puts `address` in rotation (back in, if it was leaving); false if it
    /// already is.
    pub(crate) fn add(&mut self, address: Address) -> bool {
        if let Some(m) = self.members.iter_mut().find(|m| m.address == address) {
            return std::mem::replace(&mut m.leaving, false);
        }
        self.members.push(Member {
            address,
            load: 0,
            leaving: false,
        });
        true
    }

    /// Takes `address` out of rotation but keeps its load: it is still
    /// known, holding requests. False if it was not in rotation.
    pub(crate) fn leave(&mut self, address: &Address) -> bool {
        match self.members.iter_mut().find(|m| m.address == *address) {
            Some(m) => !std::mem::replace(&mut m.leaving, true),
            None => false,
        }
    }

    /// Forgets `address` altogether; false if it was not known.
    pub(crate) fn remove(&mut self, address: &Address) -> bool {
        let before = self.members.len();
        self.members.retain(|m| m.address != *address);
        self.members.len() != before
    }

    /// Whether `address` is known (in rotation or leaving).
    pub(crate) fn contains(&self, address: &Address) -> bool {
        self.members.iter().any(|m| m.address == *address)
    }

    /// Whether `address` is known and out of rotation.
    pub(crate) fn is_leaving(&self, address: &Address) -> bool {
        self.members
            .iter()
            .any(|m| m.address == *address && m.leaving)
    }

    /// How many workers are in rotation.
    pub(crate) fn len(&self) -> usize {
        self.members.iter().filter(|m| !m.leaving).count()
    }

    /// How many workers are out of rotation but still known.
    pub(crate) fn leaving(&self) -> usize {
        self.members.iter().filter(|m| m.leaving).count()
    }

    /// Whether no worker is in rotation.
    pub(crate) fn is_empty(&self) -> bool {
        self.members.iter().all(|m| m.leaving)
    }

    /// How many workers in rotation hold no request.
    pub(crate) fn idle(&self) -> usize {
        self.members
            .iter()
            .filter(|m| !m.leaving && m.load == 0)
            .count()
    }

    /// The least-loaded worker in rotation with room for one more request,
    /// charged with it; `None` when every worker is full (or there are
    /// none).
    pub(crate) fn pick(&mut self) -> Option<Address> {
        let n = self.members.len();
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (self.next + k) % n;
            let member = &self.members[i];
            if member.leaving || member.load >= self.capacity {
                continue;
            }
            let load = member.load;
            if best.is_none_or(|b| load < self.members[b].load) {
                best = Some(i);
                if load == 0 {
                    break;
                }
            }
        }
        let i = best?;
        self.next = (i + 1) % n;
        let member = &mut self.members[i];
        member.load += 1;
        Some(member.address.clone())
    }

    /// `address` has answered one request (or the spool has given it up
    /// with the worker).
    pub(crate) fn done(&mut self, address: &Address) {
        if let Some(m) = self.members.iter_mut().find(|m| m.address == *address) {
            m.load = m.load.saturating_sub(1);
        }
    }
}

/// The response times of the last [`WINDOW`] answers, and their average.
#[derive(Debug)]
pub(crate) struct Window {
    spans: [Duration; WINDOW],
    len: usize,
    next: usize,
    sum: Duration,
}

impl Window {
    /// An empty window.
    pub(crate) fn new() -> Self {
        Window {
            spans: [Duration::ZERO; WINDOW],
            len: 0,
            next: 0,
            sum: Duration::ZERO,
        }
    }

    /// Records one response time, forgetting the oldest when full.
    pub(crate) fn record(&mut self, span: Duration) {
        if self.len == WINDOW {
            self.sum -= self.spans[self.next];
        } else {
            self.len += 1;
        }
        self.spans[self.next] = span;
        self.sum += span;
        self.next = (self.next + 1) % WINDOW;
    }

    /// The average of the recorded times; `None` before the first.
    pub(crate) fn average(&self) -> Option<Duration> {
        (self.len > 0).then(|| self.sum / self.len as u32)
    }
}
