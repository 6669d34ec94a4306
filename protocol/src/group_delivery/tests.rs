//! Unit tests for the group delivery: round trips, the size bound and every refusal.

use super::*;
use crate::frames::MAX_PAYLOAD_LEN;

fn delivery(kind: PostKind, len: usize) -> GroupDelivery {
    GroupDelivery {
        group_id: GroupId([7; 32]),
        seq: 3,
        epoch: 9,
        kind,
        payload: vec![0xab; len],
    }
}

#[test]
fn round_trips_with_its_header_first() {
    for kind in PostKind::ALL {
        let d = delivery(kind, 5);
        let bytes = d.to_bytes();
        assert_eq!(bytes.len(), GroupDelivery::encoded_len(5));
        assert_eq!(bytes[0], 0x10);
        assert_eq!(&bytes[1..33], &[7; 32]);
        assert_eq!(&bytes[33..41], &3u64.to_be_bytes());
        assert_eq!(&bytes[41..49], &9u64.to_be_bytes());
        assert_eq!(bytes[49], kind.to_byte());
        assert_eq!(&bytes[50..], &[0xab; 5]);
        assert!(GroupDelivery::is_group_delivery(&bytes));
        assert_eq!(GroupDelivery::from_bytes(&bytes).unwrap(), d);
    }
}

#[test]
fn the_largest_post_fills_a_deliver_payload_exactly() {
    assert_eq!(GROUP_DELIVERY_HEADER_LEN, 50);
    let full = delivery(PostKind::Application, MAX_GROUP_POST_LEN);
    let bytes = full.to_bytes();
    assert_eq!(bytes.len(), MAX_PAYLOAD_LEN);
    assert_eq!(GroupDelivery::from_bytes(&bytes).unwrap(), full);
    let mut over = bytes;
    over.push(0);
    assert_eq!(
        GroupDelivery::from_bytes(&over),
        Err(DecodeError::TooLong {
            what: "group post",
            len: MAX_GROUP_POST_LEN + 1,
            max: MAX_GROUP_POST_LEN
        })
    );
}

#[test]
fn sealed_envelopes_and_damaged_headers_are_refused() {
    let bytes = delivery(PostKind::Commit, 3).to_bytes();
    for first in [0x01, 0x02, 0x00, 0x11, 0xff] {
        let mut other = bytes.clone();
        other[0] = first;
        assert!(!GroupDelivery::is_group_delivery(&other));
        assert_eq!(
            GroupDelivery::from_bytes(&other),
            Err(DecodeError::UnknownTag {
                what: "group delivery",
                tag: first
            })
        );
    }
    let mut bad_kind = bytes.clone();
    bad_kind[49] = 3;
    assert_eq!(
        GroupDelivery::from_bytes(&bad_kind),
        Err(DecodeError::UnknownTag {
            what: "post kind",
            tag: 3
        })
    );
    // The header alone has no payload.
    assert_eq!(
        GroupDelivery::from_bytes(&bytes[..50]),
        Err(DecodeError::Invalid("empty group post"))
    );
    for len in 0..50 {
        assert!(
            matches!(
                GroupDelivery::from_bytes(&bytes[..len]),
                Err(DecodeError::Truncated { .. })
            ),
            "cut to {len}"
        );
    }
    assert!(!GroupDelivery::is_group_delivery(&[]));
}
