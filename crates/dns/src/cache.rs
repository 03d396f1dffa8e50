//! A small TTL-respecting cache of upstream answers, bounded in size.
//!
//! Pods ask the same outside names over and over (`ndots:5` turns each lookup into several),
//! so even a tiny cache takes most of the load off the upstream servers. Entries live for
//! the smallest TTL in the answer (or the SOA's negative TTL), capped, and are served with
//! their TTLs counted down so downstream caches never hold a record longer than upstream
//! allowed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// Positive answers are kept at most this long whatever their TTL.
const MAX_TTL: u32 = 3600;
/// Negative answers (NXDOMAIN, NODATA) at most this long (RFC 2308 suggests ≤ 3 hours;
/// short keeps a newly created outside name visible soon).
const MAX_NEGATIVE_TTL: u32 = 300;

type Key = (Name, RecordType, DNSClass);

struct Entry {
    stored: Instant,
    ttl: u32,
    message: Message,
}

pub struct Cache {
    capacity: usize,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(q: &Query) -> Key {
        // Name hashes case-insensitively, so `Example.COM` and `example.com` share an entry.
        (q.name().clone(), q.query_type(), q.query_class())
    }

    /// The cached answer with TTLs reduced by its age, or None when absent or expired.
    pub fn get(&self, q: &Query) -> Option<Message> {
        self.get_at(q, Instant::now())
    }

    fn get_at(&self, q: &Query, now: Instant) -> Option<Message> {
        let key = Cache::key(q);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(&key)?;
        let age = now.saturating_duration_since(entry.stored).as_secs();
        if age >= u64::from(entry.ttl) {
            entries.remove(&key);
            return None;
        }
        let mut m = entry.message.clone();
        let age = age as u32;
        for r in m
            .answers
            .iter_mut()
            .chain(m.authorities.iter_mut())
            .chain(m.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(m)
    }

    /// Stores a NOERROR or NXDOMAIN answer; anything else (SERVFAIL, truncated) is not
    /// worth remembering.
    pub fn insert(&self, q: &Query, m: &Message) {
        let Some(ttl) = cache_ttl(m) else {
            return;
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            let now = Instant::now();
            entries.retain(|_, e| {
                now.saturating_duration_since(e.stored) < Duration::from_secs(e.ttl.into())
            });
            // Still full of live entries: drop an arbitrary one. Fair enough for a cache
            // whose job is absorbing bursts of the same names.
            if entries.len() >= self.capacity {
                if let Some(k) = entries.keys().next().cloned() {
                    entries.remove(&k);
                }
            }
        }
        let mut message = m.clone();
        message.edns = None;
        entries.insert(
            Cache::key(q),
            Entry {
                stored: Instant::now(),
                ttl,
                message,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

/// How long this answer may be cached, or None when it must not be.
fn cache_ttl(m: &Message) -> Option<u32> {
    if m.metadata.truncation {
        return None;
    }
    let ttl = match m.metadata.response_code {
        ResponseCode::NoError if !m.answers.is_empty() => {
            m.answers.iter().map(|r| r.ttl).min()?.min(MAX_TTL)
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            // RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM).
            let soa = m.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            });
            soa.unwrap_or(0).min(MAX_NEGATIVE_TTL)
        }
        _ => return None,
    };
    (ttl > 0).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::Record;

    use super::*;

    fn answer(ttl: u32) -> (Query, Message) {
        let name = Name::from_ascii("example.com.").unwrap();
        let q = Query::query(name.clone(), RecordType::A);
        let mut m = Message::response(1, hickory_proto::op::OpCode::Query);
        m.add_query(q.clone());
        m.add_answer(Record::from_rdata(
            name,
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
        (q, m)
    }

    #[test]
    fn counts_ttl_down_and_expires() {
        let c = Cache::new(10);
        let (q, m) = answer(60);
        c.insert(&q, &m);
        let now = Instant::now();
        let hit = c.get_at(&q, now + Duration::from_secs(20)).unwrap();
        assert_eq!(hit.answers[0].ttl, 40);
        let upper = Query::query(Name::from_ascii("EXAMPLE.com.").unwrap(), RecordType::A);
        assert!(c.get_at(&upper, now).is_some());
        assert!(c.get_at(&q, now + Duration::from_secs(61)).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn zero_ttl_and_servfail_are_not_cached() {
        let c = Cache::new(10);
        let (q, m) = answer(0);
        c.insert(&q, &m);
        assert_eq!(c.len(), 0);
        let (q, mut m) = answer(60);
        m.metadata.response_code = ResponseCode::ServFail;
        c.insert(&q, &m);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bounded() {
        let c = Cache::new(3);
        for i in 0..10 {
            let name = Name::from_ascii(format!("n{i}.example.com.")).unwrap();
            let q = Query::query(name.clone(), RecordType::A);
            let (_, mut m) = answer(60);
            m.answers[0].name = name;
            c.insert(&q, &m);
        }
        assert!(c.len() <= 3);
    }
}
