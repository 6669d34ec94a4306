//! Unit tests for Padmé padding: bucket table, overhead bound, canonical unpadding, totality.

use proptest::prelude::*;

use super::*;

#[test]
fn small_plaintexts_share_the_minimum_bucket() {
    for n in 0..MIN_PADDED_LEN {
        assert_eq!(padded_len(n), Ok(MIN_PADDED_LEN), "{n}");
    }
    assert_eq!(padded_len(64), Ok(72));
}

#[test]
fn known_buckets() {
    for (n, padded) in [
        (0, 64),
        (63, 64),
        (64, 72),
        (71, 72),
        (72, 80),
        (127, 128),
        (128, 144),
        (255, 256),
        (256, 272),
        (1000, 1024),
        (65535, 65536),
        (65536, 67584),
        (MAX_PLAINTEXT_LEN, 1_081_344),
    ] {
        assert_eq!(padded_len(n), Ok(padded), "{n}");
    }
    assert_eq!(MAX_PADDED_LEN, 1_081_344);
}

/// Checks every length up to the maximum: monotonic, a bucket, within the documented bound.
#[test]
fn every_length_is_bucketed_within_the_bound() {
    let mut previous = 0;
    let mut worst = (0, 1);
    for n in 0..=MAX_PLAINTEXT_LEN {
        let padded = padded_len(n).unwrap();
        let l = n + 1;
        assert!(padded > n && padded >= previous && is_bucket(padded), "{n}");
        if l >= MIN_PADDED_LEN {
            let overhead = padded - l;
            assert!(overhead * 100 < 12 * l, "{n}");
            if overhead * worst.1 > worst.0 * l {
                worst = (overhead, l);
            }
            let e = l.ilog2();
            let s = e.ilog2() + 1;
            assert!(overhead < 1 << (e - s), "{n}");
        }
        previous = padded;
    }
    assert_eq!(worst, (15, 129));
}

#[test]
fn bucket_lengths_are_exactly_the_outputs() {
    let outputs: std::collections::BTreeSet<usize> = (0..=MAX_PLAINTEXT_LEN)
        .map(|n| padded_len(n).unwrap())
        .collect();
    for len in 0..=MAX_PADDED_LEN + 100 {
        assert_eq!(is_bucket(len), outputs.contains(&len), "{len}");
    }
}

#[test]
fn too_long_is_an_error() {
    let big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
    assert_eq!(
        pad(&big),
        Err(PlaintextTooLong {
            len: MAX_PLAINTEXT_LEN + 1
        })
    );
    assert!(padded_len(usize::MAX).is_err());
    assert_eq!(
        pad(&big[..MAX_PLAINTEXT_LEN]).unwrap().len(),
        MAX_PADDED_LEN
    );
}

#[test]
fn layout_is_plaintext_marker_zeros() {
    let padded = pad(b"hello").unwrap();
    assert_eq!(padded.len(), 64);
    assert_eq!(&padded[..5], b"hello");
    assert_eq!(padded[5], 0x80);
    assert!(padded[6..].iter().all(|&b| b == 0));
    assert_eq!(unpad(&padded), Ok(&b"hello"[..]));
}

#[test]
fn unpad_refuses_bad_lengths() {
    for len in [0, 1, 63, 65, 71, 73, 129, MAX_PADDED_LEN + 8] {
        let mut buf = vec![0u8; len];
        if let Some(first) = buf.first_mut() {
            *first = MARKER;
        }
        assert_eq!(unpad(&buf), Err(PaddingError::NotABucket { len }), "{len}");
    }
}

#[test]
fn unpad_refuses_bad_markers() {
    let zeros = vec![0u8; 64];
    assert_eq!(unpad(&zeros), Err(PaddingError::BadMarker));
    let mut garbage_after_marker = pad(b"abc").unwrap();
    garbage_after_marker[10] = 1;
    assert_eq!(unpad(&garbage_after_marker), Err(PaddingError::BadMarker));
    let mut no_marker = pad(b"abc").unwrap();
    no_marker[3] = 0x01;
    assert_eq!(unpad(&no_marker), Err(PaddingError::BadMarker));
    let mut last_byte = pad(b"abc").unwrap();
    last_byte[63] = 0x80;
    // Marker at the last byte: a 63-byte plaintext, canonical, so this one is accepted.
    assert_eq!(unpad(&last_byte).map(<[u8]>::len), Ok(63));
    last_byte[63] = 0x7f;
    assert_eq!(unpad(&last_byte), Err(PaddingError::BadMarker));
}

#[test]
fn unpad_refuses_excess_padding() {
    // A 10-byte plaintext belongs in the 64-byte bucket, not the 72-byte one.
    let mut padded = pad(b"0123456789").unwrap();
    padded.resize(72, 0);
    assert_eq!(
        unpad(&padded),
        Err(PaddingError::ExcessPadding {
            len: 72,
            plaintext_len: 10
        })
    );
    // A plaintext that fills more than its bucket cannot happen: the marker would be missing.
    let mut full = vec![0x41u8; 72];
    full[71] = 0x80;
    assert_eq!(unpad(&full).map(<[u8]>::len), Ok(71));
}

#[test]
fn unpad_refuses_a_plaintext_longer_than_the_maximum_as_excess_padding() {
    // SPEC.md 7, step 3: the largest bucket with its marker in the last byte would hold a
    // plaintext longer than MAX_PLAINTEXT_LEN, which `pad` never writes.
    let mut buf = vec![0x41u8; MAX_PADDED_LEN];
    buf[MAX_PADDED_LEN - 1] = MARKER;
    assert_eq!(
        unpad(&buf),
        Err(PaddingError::ExcessPadding {
            len: MAX_PADDED_LEN,
            plaintext_len: MAX_PADDED_LEN - 1
        })
    );
}

#[test]
fn plaintexts_ending_in_marker_like_bytes_round_trip() {
    for tail in [0x00u8, 0x80, 0xff] {
        for n in [1usize, 62, 63, 64, 127, 128] {
            let plaintext = vec![tail; n];
            assert_eq!(unpad(&pad(&plaintext).unwrap()), Ok(&plaintext[..]));
        }
    }
}

proptest! {
    #[test]
    fn round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..5000)) {
        let padded = pad(&plaintext).unwrap();
        prop_assert_eq!(padded.len(), padded_len(plaintext.len()).unwrap());
        prop_assert!(is_bucket(padded.len()));
        prop_assert_eq!(unpad(&padded), Ok(&plaintext[..]));
    }

    #[test]
    fn unpad_is_total_and_canonical(buf in proptest::collection::vec(any::<u8>(), 0..2000)) {
        if let Ok(plaintext) = unpad(&buf) {
            prop_assert_eq!(pad(plaintext).unwrap(), buf);
        }
    }

    #[test]
    fn unpad_is_total_on_near_padding(
        plaintext in proptest::collection::vec(any::<u8>(), 0..300),
        flip in any::<prop::sample::Index>(),
        value in any::<u8>(),
        extra in 0usize..16,
    ) {
        let mut buf = pad(&plaintext).unwrap();
        let i = flip.index(buf.len());
        buf[i] = value;
        buf.resize(buf.len() + extra, 0);
        if let Ok(out) = unpad(&buf) {
            prop_assert_eq!(pad(out).unwrap(), buf);
        }
    }
}
