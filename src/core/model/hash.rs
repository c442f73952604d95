//! Content hashes of ConfigMaps and Secrets.
//!
//! SHA-256 over an unambiguous encoding: every section, key and value is length-prefixed, so
//! `{"ab": "c"}` and `{"a": "bc"}` differ, and `data` and `binaryData` never collide. Only the
//! payload counts: labels, annotations and other metadata never change the hash. Secret bytes
//! go into the hasher and are dropped with the object; nothing else keeps them.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sha2::{Digest, Sha256};

/// A SHA-256 content hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Lower-case hex, 64 characters.
    pub(crate) fn to_hex(self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }

    /// The first 12 hex digits, for logs.
    pub(crate) fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

struct Encoder(Sha256);

impl Encoder {
    fn new(domain: &[u8]) -> Self {
        let mut e = Encoder(Sha256::new());
        e.bytes(domain);
        e
    }

    fn bytes(&mut self, b: &[u8]) {
        self.0.update((b.len() as u64).to_be_bytes());
        self.0.update(b);
    }

    fn section<'a, V: AsRef<[u8]> + 'a>(
        &mut self,
        tag: &[u8],
        entries: impl ExactSizeIterator<Item = (&'a String, V)>,
    ) {
        self.bytes(tag);
        self.0.update((entries.len() as u64).to_be_bytes());
        for (k, v) in entries {
            self.bytes(k.as_bytes());
            self.bytes(v.as_ref());
        }
    }

    fn finish(self) -> ContentHash {
        ContentHash(self.0.finalize().into())
    }
}

/// Hash of a ConfigMap's `data` and `binaryData`.
pub(crate) fn configmap_hash(cm: &ConfigMap) -> ContentHash {
    configmap_hash_parts(cm.data.as_ref(), cm.binary_data.as_ref())
}

/// Hash of ConfigMap payload parts (the maps are sorted by key, so the order is stable).
pub(crate) fn configmap_hash_parts(
    data: Option<&BTreeMap<String, String>>,
    binary: Option<&BTreeMap<String, ByteString>>,
) -> ContentHash {
    let empty_s = BTreeMap::new();
    let empty_b = BTreeMap::new();
    let mut e = Encoder::new(b"configmap");
    e.section(b"data", data.unwrap_or(&empty_s).iter().map(|(k, v)| (k, v.as_bytes())));
    e.section(b"binaryData", binary.unwrap_or(&empty_b).iter().map(|(k, v)| (k, &v.0[..])));
    e.finish()
}

/// Hash of a Secret's `data` (the API server folds `stringData` into `data`).
pub(crate) fn secret_hash(secret: &Secret) -> ContentHash {
    secret_hash_parts(secret.data.as_ref())
}

/// Hash of Secret payload.
pub(crate) fn secret_hash_parts(data: Option<&BTreeMap<String, ByteString>>) -> ContentHash {
    let empty = BTreeMap::new();
    let mut e = Encoder::new(b"secret");
    e.section(b"data", data.unwrap_or(&empty).iter().map(|(k, v)| (k, &v.0[..])));
    e.finish()
}

/// Hash of what a SecretProviderClassPodStatus reports as mounted: the SecretProviderClass
/// name and each object's id and version (Reloader's items `id=version` and
/// `SecretProviderClassName=name`), in a stable order. Versions only: the status carries no value.
pub(crate) fn spcps_hash<'a>(spc: &str, objects: impl Iterator<Item = (&'a str, &'a str)>) -> ContentHash {
    let mut items: Vec<(&str, &str)> = objects.collect();
    items.sort_unstable();
    let mut e = Encoder::new(b"secretproviderclasspodstatus");
    e.bytes(spc.as_bytes());
    e.0.update((items.len() as u64).to_be_bytes());
    for (id, version) in items {
        e.bytes(id.as_bytes());
        e.bytes(version.as_bytes());
    }
    e.finish()
}

/// Stakater Reloader's hash of a source's content (its `GenerateSHA`: SHA-1 of the `k=v`
/// items sorted byte-wise and joined with `;`, shared spec §6), cut to its first 32 bits. It
/// is kept only to compare with the marks Reloader left on the workloads it reloaded
/// (`model::marks`), so that a switch from Reloader rolls what Reloader had not applied: 32
/// bits tell an older content from the current one but for one chance in four billion, and
/// cost nothing per source (they fit in `SourceInfo`'s padding).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct ReloaderHash(pub(crate) u32);

impl ReloaderHash {
    /// Reads Reloader's 40-hex form, as its marks hold it; `None` for anything else (this
    /// controller writes 64-hex hashes in the same places).
    pub(crate) fn from_hex(s: &str) -> Option<ReloaderHash> {
        if s.len() != 40 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(&s[..8], 16).ok().map(ReloaderHash)
    }
}

/// Reloader's hash of items `k=v`, without building them: sorted as the joined bytes would
/// be, then fed to SHA-1 one part at a time (a 1 MiB value is not copied).
fn reloader_sha<'a>(items: impl Iterator<Item = (&'a str, std::borrow::Cow<'a, [u8]>)>) -> ReloaderHash {
    use sha1::{Digest as _, Sha1};
    let mut items: Vec<(&str, std::borrow::Cow<[u8]>)> = items.collect();
    items.sort_by(|(k1, v1), (k2, v2)| joined(k1, v1).cmp(joined(k2, v2)));
    let mut h = Sha1::new();
    for (i, (k, v)) in items.iter().enumerate() {
        if i > 0 {
            h.update(b";");
        }
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v);
    }
    let d = h.finalize();
    ReloaderHash(u32::from_be_bytes([d[0], d[1], d[2], d[3]]))
}

/// The bytes of the item `k=v`, as Reloader joins them.
fn joined<'b>(k: &'b str, v: &'b [u8]) -> impl Iterator<Item = u8> + 'b {
    k.bytes().chain(std::iter::once(b'=')).chain(v.iter().copied())
}

/// Reloader's hash of a ConfigMap: `data` items and `binaryData` items (the value in
/// standard, padded base64), sorted together.
pub(crate) fn reloader_configmap_hash(cm: &ConfigMap) -> ReloaderHash {
    use base64::Engine as _;
    use std::borrow::Cow;
    let data = cm.data.iter().flatten().map(|(k, v)| (k.as_str(), Cow::Borrowed(v.as_bytes())));
    let binary =
        cm.binary_data.iter().flatten().map(|(k, v)| {
            (k.as_str(), Cow::Owned(base64::engine::general_purpose::STANDARD.encode(&v.0).into_bytes()))
        });
    reloader_sha(data.chain(binary))
}

/// Reloader's hash of a Secret: `data` items with the decoded bytes.
pub(crate) fn reloader_secret_hash(secret: &Secret) -> ReloaderHash {
    reloader_sha(secret.data.iter().flatten().map(|(k, v)| (k.as_str(), std::borrow::Cow::Borrowed(&v.0[..]))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(data: &[(&str, &str)], bin: &[(&str, &[u8])]) -> ConfigMap {
        ConfigMap {
            data: (!data.is_empty()).then(|| data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            binary_data: (!bin.is_empty())
                .then(|| bin.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect()),
            ..Default::default()
        }
    }

    fn secret(data: &[(&str, &[u8])]) -> Secret {
        Secret {
            data: Some(data.iter().map(|(k, v)| (k.to_string(), ByteString(v.to_vec()))).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn known_vectors() {
        // Pinned (and cross-checked with an independent implementation of the encoding) so an
        // accidental change, which would roll every workload once after an upgrade, fails.
        let cases: [(&str, ContentHash, &str); 5] = [
            (
                "empty ConfigMap",
                configmap_hash(&cm(&[], &[])),
                "51385a260de0ee94beb529785b7ddb597d200e8adc01ea65c06cb8b930c6d3bb",
            ),
            (
                "key=value",
                configmap_hash(&cm(&[("key", "value")], &[])),
                "babed0079038fa4e3a071c945eeed67dbeae15e2300e1d3a65f184616dada495",
            ),
            (
                "binaryData",
                configmap_hash(&cm(&[], &[("bin", &[0, 1])])),
                "6e2828b19d38cc1513226058f354189438cbdc69ccb2fbaa8287b1c4ec627e9b",
            ),
            (
                "secret",
                secret_hash(&secret(&[("password", b"s3cr3t")])),
                "583565c43ea852273849be833bfd6213b04404f28c455200dc5450732f442b7d",
            ),
            (
                "empty Secret",
                secret_hash(&Secret::default()),
                "5cb0c80ea261f2adafbdda540e474cbe571cfccdf279514754621f6377da93d7",
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got.to_hex(), want, "{name}");
        }
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            a: ContentHash,
            b: ContentHash,
            equal: bool,
        }
        let cases = [
            Case {
                name: "same data, same hash",
                a: configmap_hash(&cm(&[("key", "value")], &[])),
                b: configmap_hash(&cm(&[("key", "value")], &[])),
                equal: true,
            },
            Case {
                name: "value change",
                a: configmap_hash(&cm(&[("key", "value")], &[])),
                b: configmap_hash(&cm(&[("key", "value2")], &[])),
                equal: false,
            },
            Case {
                name: "key/value boundary is unambiguous",
                a: configmap_hash(&cm(&[("ab", "c")], &[])),
                b: configmap_hash(&cm(&[("a", "bc")], &[])),
                equal: false,
            },
            Case {
                name: "entry boundary is unambiguous",
                a: configmap_hash(&cm(&[("a", "1;b=2")], &[])),
                b: configmap_hash(&cm(&[("a", "1"), ("b", "2")], &[])),
                equal: false,
            },
            Case {
                name: "data and binaryData are distinct sections",
                a: configmap_hash(&cm(&[("k", "test")], &[])),
                b: configmap_hash(&cm(&[], &[("k", b"test")])),
                equal: false,
            },
            Case {
                name: "binaryData change",
                a: configmap_hash(&cm(&[], &[("bin", &[0, 1])])),
                b: configmap_hash(&cm(&[], &[("bin", &[0, 2])])),
                equal: false,
            },
            Case {
                name: "empty data equals absent data",
                a: configmap_hash(&ConfigMap { data: Some(BTreeMap::new()), ..Default::default() }),
                b: configmap_hash(&ConfigMap::default()),
                equal: true,
            },
            Case {
                name: "a ConfigMap and a Secret with the same payload differ",
                a: configmap_hash(&cm(&[], &[("k", b"v")])),
                b: secret_hash(&secret(&[("k", b"v")])),
                equal: false,
            },
            Case {
                name: "non-UTF-8 secret bytes",
                a: secret_hash(&secret(&[("k", &[0xff, 0xfe, 0x00])])),
                b: secret_hash(&secret(&[("k", &[0xff, 0xfe, 0x01])])),
                equal: false,
            },
            Case {
                name: "secret key rename",
                a: secret_hash(&secret(&[("password", b"s3cr3t")])),
                b: secret_hash(&secret(&[("passwort", b"s3cr3t")])),
                equal: false,
            },
        ];
        for c in cases {
            assert_eq!(c.a == c.b, c.equal, "{}", c.name);
        }
    }

    #[test]
    fn metadata_does_not_count() {
        let mut a = cm(&[("key", "value")], &[]);
        let before = configmap_hash(&a);
        a.metadata = ObjectMeta {
            name: Some("x".into()),
            labels: Some([("l".to_string(), "v".to_string())].into()),
            annotations: Some([("a".to_string(), "v".to_string())].into()),
            resource_version: Some("42".into()),
            ..Default::default()
        };
        a.immutable = Some(true);
        assert_eq!(configmap_hash(&a), before);

        let mut s = secret(&[("k", b"v")]);
        let before = secret_hash(&s);
        s.type_ = Some("Opaque".into());
        s.metadata.labels = Some([("l".to_string(), "v".to_string())].into());
        assert_eq!(secret_hash(&s), before);
    }

    #[test]
    fn large_inputs() {
        let big = "x".repeat(1 << 20);
        let many: Vec<(String, String)> = (0..5000).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        let m = ConfigMap {
            data: Some(many.into_iter().chain([("big".to_string(), big)]).collect()),
            ..Default::default()
        };
        assert_eq!(configmap_hash(&m), configmap_hash(&m.clone()));
    }

    #[test]
    fn reloader_hashes_follow_its_vectors() {
        // Shared spec §6: the full SHA-1, of which the first 8 hex digits are kept.
        let cases: [(&str, ReloaderHash, &str); 7] = [
            ("empty ConfigMap", reloader_configmap_hash(&cm(&[], &[])), "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            ("empty Secret", reloader_secret_hash(&Secret::default()), "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (
                "key=value",
                reloader_configmap_hash(&cm(&[("key", "value")], &[])),
                "dc30e0faa89a70dec1033016a2309bbeb9efcbd0",
            ),
            (
                "a=1;b=2",
                reloader_configmap_hash(&cm(&[("b", "2"), ("a", "1")], &[])),
                "f83e99e324ba68ccc373a58ef1eb42f8ab88646a",
            ),
            (
                "items sorted as joined bytes ('.' before '='), not by key",
                reloader_configmap_hash(&cm(&[("a", "1"), ("a.b", "2")], &[])),
                "499daa6d70eb53ada0bb7346397120ffefcda5c3",
            ),
            (
                "binaryData",
                reloader_configmap_hash(&cm(&[], &[("bin", &[0, 1])])),
                "14df3111bd21ae67fbf5e22f21fc59e3a3976291",
            ),
            (
                "secret",
                reloader_secret_hash(&secret(&[("password", b"s3cr3t")])),
                "d93dd00779cd04e2ec1db21fa3d0e20deea13f9c",
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(Some(got), ReloaderHash::from_hex(want), "{name}");
        }
        assert_eq!(
            reloader_configmap_hash(&cm(&[("k", "dGVzdA==")], &[])),
            reloader_configmap_hash(&cm(&[], &[("k", b"test")]))
        );
        assert_eq!(ReloaderHash::from_hex(&"ab".repeat(32)), None, "ours is 64-hex: not Reloader's");
        assert_eq!(ReloaderHash::from_hex("not hex at all, but forty characters lon"), None);
    }
}
