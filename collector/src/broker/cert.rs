//! The subject CN of a client certificate (X.509, RFC 5280, DER): the identity
//! of a connection authenticated by certificate.
//!
//! rustls has verified the chain before this runs; this only walks
//! `Certificate -> tbsCertificate -> subject` and reads its one `commonName`
//! (OID 2.5.4.3). A certificate with no CN, or with several (which one would be
//! the identity?), is refused.

/// Why no identity can be read from a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("the certificate is not well-formed DER")]
    Malformed,
    #[error("the certificate's subject has no CN")]
    NoCommonName,
    #[error("the certificate's subject has more than one CN")]
    SeveralCommonNames,
    #[error("the certificate's CN is not a UTF-8, printable, IA5 or BMP string")]
    UnsupportedString,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// `[0] EXPLICIT Version`, present from X.509 v2 on.
const VERSION_TAG: u8 = 0xa0;
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// One DER element: (tag, contents, the rest after it).
fn element(input: &[u8]) -> Result<(u8, &[u8], &[u8]), CertError> {
    let (&tag, rest) = input.split_first().ok_or(CertError::Malformed)?;
    let (&first, rest) = rest.split_first().ok_or(CertError::Malformed)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        // Certificates are far below 4 GiB; 0x80 (indefinite) is not DER.
        if n == 0 || n > 4 || rest.len() < n {
            return Err(CertError::Malformed);
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, rest)
    };
    if rest.len() < len {
        return Err(CertError::Malformed);
    }
    let (contents, rest) = rest.split_at(len);
    Ok((tag, contents, rest))
}

fn expect(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), CertError> {
    let (t, contents, rest) = element(input)?;
    if t != tag {
        return Err(CertError::Malformed);
    }
    Ok((contents, rest))
}

/// The subject CN of a DER certificate.
pub fn subject_common_name(der: &[u8]) -> Result<String, CertError> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    let (tag, _, after) = element(rest)?;
    if tag == VERSION_TAG {
        rest = after;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        let (_, _, after) = element(rest)?;
        rest = after;
    }
    let (subject, _) = expect(rest, SEQUENCE)?;
    let mut found: Option<String> = None;
    let mut rdns = subject;
    while !rdns.is_empty() {
        let (set, after) = expect(rdns, SET)?;
        rdns = after;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, after) = expect(attributes, SEQUENCE)?;
            attributes = after;
            let (oid, value) = expect(attribute, OID)?;
            if oid != COMMON_NAME {
                continue;
            }
            if found.is_some() {
                return Err(CertError::SeveralCommonNames);
            }
            let (string_tag, bytes, _) = element(value)?;
            found = Some(decode_string(string_tag, bytes)?);
        }
    }
    found.ok_or(CertError::NoCommonName)
}

fn decode_string(tag: u8, bytes: &[u8]) -> Result<String, CertError> {
    match tag {
        // UTF8String, PrintableString, IA5String.
        0x0c | 0x13 | 0x16 => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| CertError::UnsupportedString),
        // BMPString: UTF-16 big-endian.
        0x1e if bytes.len().is_multiple_of(2) => {
            let units: Vec<u16> = bytes
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| CertError::UnsupportedString)
        }
        _ => Err(CertError::UnsupportedString),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of a TLV with a short length.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if contents.len() < 0x80 {
            v.push(contents.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(contents.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(contents);
        v
    }

    fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        tlv(
            SET,
            &tlv(SEQUENCE, &[tlv(OID, oid), tlv(tag, value)].concat()),
        )
    }

    fn certificate(subject: &[u8], with_version: bool) -> Vec<u8> {
        let mut tbs = Vec::new();
        if with_version {
            tbs.extend(tlv(VERSION_TAG, &tlv(0x02, &[2])));
        }
        tbs.extend(tlv(0x02, &[1, 2, 3]));
        tbs.extend(tlv(SEQUENCE, &tlv(OID, &[0x2a, 0x86, 0x48])));
        tbs.extend(tlv(SEQUENCE, &attribute(COMMON_NAME, 0x0c, b"issuer CA")));
        tbs.extend(tlv(
            SEQUENCE,
            &[tlv(0x17, b"250101000000Z"), tlv(0x17, b"260101000000Z")].concat(),
        ));
        tbs.extend(tlv(SEQUENCE, subject));
        tbs.extend(tlv(SEQUENCE, &[0u8; 200])); // subjectPublicKeyInfo, long form
        let cert = [tlv(SEQUENCE, &tbs), tlv(SEQUENCE, &[]), tlv(0x03, &[0])].concat();
        tlv(SEQUENCE, &cert)
    }

    const ORG: &[u8] = &[0x55, 0x04, 0x0a];

    #[test]
    fn the_subject_cn_is_read_not_the_issuers() {
        let subject = [
            attribute(ORG, 0x13, b"sitewatch"),
            attribute(COMMON_NAME, 0x0c, b"bj1/web-01"),
        ]
        .concat();
        assert_eq!(
            subject_common_name(&certificate(&subject, true)),
            Ok("bj1/web-01".into())
        );
        assert_eq!(
            subject_common_name(&certificate(&subject, false)),
            Ok("bj1/web-01".into())
        );
        let bmp: Vec<u8> = "bj1/db-01"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(
            subject_common_name(&certificate(&attribute(COMMON_NAME, 0x1e, &bmp), true)),
            Ok("bj1/db-01".into())
        );
    }

    #[test]
    fn no_cn_several_cns_and_garbage_are_refused() {
        assert_eq!(
            subject_common_name(&certificate(&attribute(ORG, 0x13, b"x"), true)),
            Err(CertError::NoCommonName)
        );
        let two = [
            attribute(COMMON_NAME, 0x0c, b"a"),
            attribute(COMMON_NAME, 0x0c, b"b"),
        ]
        .concat();
        assert_eq!(
            subject_common_name(&certificate(&two, true)),
            Err(CertError::SeveralCommonNames)
        );
        assert_eq!(
            subject_common_name(&certificate(&attribute(COMMON_NAME, 0x14, b"t61"), true)),
            Err(CertError::UnsupportedString)
        );
        let good = certificate(&attribute(COMMON_NAME, 0x0c, b"x"), true);
        // Every truncation is an error, never a panic.
        for n in 0..good.len() {
            assert!(subject_common_name(&good[..n]).is_err(), "{n}");
        }
        assert_eq!(
            subject_common_name(&[0x30, 0x80]),
            Err(CertError::Malformed)
        );
        assert_eq!(
            subject_common_name(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            Err(CertError::Malformed)
        );
    }
}
