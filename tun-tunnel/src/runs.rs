//! Which packets of a batch go out in one `UDP_SEGMENT` send: runs of
//! equal-size datagrams, the last of a run possibly shorter, as the kernel
//! accepts them (`udp_send_skb()` in net/ipv4/udp.c and `udp_v6_send_skb()`
//! in net/ipv6/udp.c: at most `UDP_MAX_SEGMENTS` segments, at most one IP
//! packet's worth of payload in all). Pure: the pump executes the plan.

/// The most datagrams one `UDP_SEGMENT` send carries on every kernel with
/// the option (`UDP_MAX_SEGMENTS` of include/linux/udp.h; newer kernels
/// allow 128, 64 is safe everywhere).
pub const UDP_MAX_SEGMENTS: usize = 64;

/// The most payload bytes one send carries: an IPv4 packet's 65535 less
/// its 20-byte header and the 8-byte UDP header (IPv6 allows 20 more; the
/// smaller limit serves both).
pub const MAX_SEND_BYTES: usize = 65535 - 20 - 8;

/// What bounds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Datagrams per send (1: GSO off or not granted).
    pub segments: usize,
    /// The largest datagram the underlay carries.
    pub datagram: usize,
}

/// One step of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Packets `start..start + count` in one send of `bytes` bytes, cut
    /// into `seg`-byte datagrams (the last may be shorter).
    Send {
        start: usize,
        count: usize,
        seg: usize,
        bytes: usize,
    },
    /// Packet `index` is `len` bytes, more than the underlay carries.
    TooLarge { index: usize, len: usize },
}

/// Plan the sends of packets of lengths `lens` into `out` (cleared first),
/// in order: every packet is in exactly one step.
pub(crate) fn plan(lens: &[usize], limits: Limits, out: &mut Vec<Step>) {
    out.clear();
    let segments = limits.segments.clamp(1, UDP_MAX_SEGMENTS);
    let mut i = 0;
    while i < lens.len() {
        let seg = lens[i];
        if seg > limits.datagram {
            out.push(Step::TooLarge { index: i, len: seg });
            i += 1;
            continue;
        }
        let (start, mut count, mut bytes) = (i, 1, seg);
        i += 1;
        // A zero-length datagram cannot be a GSO segment size.
        while seg > 0 && i < lens.len() && count < segments {
            let len = lens[i];
            if len > seg || len == 0 || bytes + len > MAX_SEND_BYTES {
                break;
            }
            count += 1;
            bytes += len;
            i += 1;
            if len < seg {
                break; // only the last datagram of a run may be shorter
            }
        }
        out.push(Step::Send {
            start,
            count,
            seg,
            bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(lens: &[usize], segments: usize, datagram: usize) -> Vec<Step> {
        let mut out = vec![Step::TooLarge { index: 99, len: 0 }];
        plan(lens, Limits { segments, datagram }, &mut out);
        out
    }

    fn send(start: usize, count: usize, seg: usize, bytes: usize) -> Step {
        Step::Send {
            start,
            count,
            seg,
            bytes,
        }
    }

    #[test]
    fn equal_sizes_make_one_run_with_a_shorter_tail() {
        assert_eq!(
            steps(&[1400, 1400, 1400, 700], 64, 1472),
            [send(0, 4, 1400, 4900)]
        );
    }

    #[test]
    fn a_shorter_packet_ends_its_run_and_a_longer_one_starts_the_next() {
        assert_eq!(
            steps(&[1000, 500, 1000, 1000, 1200, 60], 64, 1472),
            [
                send(0, 2, 1000, 1500),
                send(2, 2, 1000, 2000),
                send(4, 2, 1200, 1260)
            ]
        );
    }

    #[test]
    fn without_gso_every_packet_is_its_own_send() {
        assert_eq!(
            steps(&[100, 100, 100], 1, 1472),
            [
                send(0, 1, 100, 100),
                send(1, 1, 100, 100),
                send(2, 1, 100, 100)
            ]
        );
    }

    #[test]
    fn runs_respect_the_segment_and_byte_limits() {
        let lens = vec![1400; 100];
        let s = steps(&lens, 500, 1472);
        // 64 segments at most, whatever was asked for.
        assert_eq!(s[0], send(0, 46, 1400, 46 * 1400));
        // 46 * 1400 = 64400 fits in 65507; 47 would not.
        assert_eq!(s[1], send(46, 46, 1400, 46 * 1400));
        assert_eq!(s[2], send(92, 8, 1400, 8 * 1400));
        let small = vec![100; 130];
        let s = steps(&small, 500, 1472);
        assert_eq!(
            s,
            [
                send(0, 64, 100, 6400),
                send(64, 64, 100, 6400),
                send(128, 2, 100, 200)
            ]
        );
    }

    #[test]
    fn packets_too_large_for_the_underlay_are_reported_in_place() {
        assert_eq!(
            steps(&[1400, 1500, 1400, 1400], 64, 1472),
            [
                send(0, 1, 1400, 1400),
                Step::TooLarge {
                    index: 1,
                    len: 1500
                },
                send(2, 2, 1400, 2800)
            ]
        );
    }

    #[test]
    fn every_packet_is_planned_once_in_order() {
        let lens: Vec<usize> = (0..500)
            .map(|i| [0, 40, 1400, 1400, 9000, 77][i % 6])
            .collect();
        for segments in [1, 2, 7, 64] {
            let mut next = 0;
            for s in steps(&lens, segments, 1472) {
                match s {
                    Step::Send {
                        start,
                        count,
                        seg,
                        bytes,
                    } => {
                        assert_eq!(start, next);
                        assert!(count >= 1 && count <= segments);
                        let run = &lens[start..start + count];
                        assert_eq!(run.iter().sum::<usize>(), bytes);
                        assert!(run[..count - 1].iter().all(|&l| l == seg));
                        assert!(run[count - 1] <= seg && bytes <= MAX_SEND_BYTES);
                        next += count;
                    }
                    Step::TooLarge { index, len } => {
                        assert_eq!((index, len), (next, lens[next]));
                        assert!(len > 1472);
                        next += 1;
                    }
                }
            }
            assert_eq!(next, lens.len());
        }
    }
}
