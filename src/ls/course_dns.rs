//! What a course-protocol TS's reply means in DNS terms, for the LS's DNS
//! answers and its cache: the translation from the course's lines to DNS
//! outcomes, kept here so that `dns` knows nothing of the course protocol.

use crate::dns::respond::DEFAULT_TTL;
use crate::dns::{CLASS_IN, Question, Record, RecordType, Resolution};
use crate::wire;

/// The TTL the LS gives an address a course-protocol TS answered with: the
/// TS's DNS default (`dnslb ts --ttl`'s default), so that a line TS
/// and a DNS TS serving the same table give the same answers.
pub const LINE_ANSWER_TTL: u32 = DEFAULT_TTL;

/// What a course-protocol TS's reply says about `question`, or `None` when
/// the reply is about another name.
///
/// - `name ip A` for an A (or `*`) question: an answer of one A record,
///   owned by the question's name as asked (case kept), with TTL `ttl`
///   (normally [`LINE_ANSWER_TTL`]).
/// - `name ip A` for any other type: NODATA (the name exists, and a course
///   TS holds only addresses).
/// - `name - NOT FOUND` (`dnslb ts --answer-misses`): NXDOMAIN, without a
///   SOA.
/// - A question whose class is not IN: REFUSED (a course TS holds only the
///   Internet class).
pub fn line_outcome(question: &Question, reply: &wire::Reply, ttl: u32) -> Option<Resolution> {
    if question.name.hostname_key()? != wire::name_key(reply.name()) {
        return None;
    }
    if question.qclass != CLASS_IN {
        return Some(Resolution::Refused);
    }
    Some(match reply {
        wire::Reply::NotFound(_) => Resolution::nxdomain(),
        wire::Reply::Found(a) if matches!(question.qtype, RecordType::A | RecordType::ANY) => {
            Resolution::answer(vec![Record::a(question.name.clone(), ttl, a.ip)])
        }
        wire::Reply::Found(_) => Resolution::NoData { soa: None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::respond::Sections;
    use crate::dns::{Name, RData};

    #[test]
    fn course_replies_become_outcomes_for_the_question_they_answer() {
        let question = |qtype, qclass| Question {
            name: Name::from_ascii("Www.Site.com.").unwrap(),
            qtype,
            qclass,
        };
        let hit = wire::parse_reply(b"www.site.COM 10.1.2.3 A").unwrap();
        let miss = wire::parse_reply(b"www.site.com - NOT FOUND").unwrap();
        let a = question(RecordType::A, CLASS_IN);
        let Some(Resolution::Answer(Sections {
            answers: records, ..
        })) = line_outcome(&a, &hit, 7)
        else {
            panic!()
        };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].name.to_string(), "Www.Site.com.");
        assert_eq!(
            (records[0].ttl, &records[0].data),
            (7, &RData::A([10, 1, 2, 3].into()))
        );
        assert!(matches!(
            line_outcome(&question(RecordType::ANY, CLASS_IN), &hit, 7),
            Some(Resolution::Answer(_))
        ));
        assert_eq!(
            line_outcome(&question(RecordType::AAAA, CLASS_IN), &hit, 7),
            Some(Resolution::NoData { soa: None })
        );
        assert_eq!(line_outcome(&a, &miss, 7), Some(Resolution::nxdomain()));
        assert_eq!(
            line_outcome(&question(RecordType::A, 3), &hit, 7),
            Some(Resolution::Refused)
        );
        let other = wire::parse_reply(b"www.site.org 10.1.2.3 A").unwrap();
        assert_eq!(line_outcome(&a, &other, 7), None);
    }
}
