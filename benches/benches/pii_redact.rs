//! `hisn-pii-redact` benchmarks: the single-pass redactor against a naive
//! redactor that runs one regular expression per kind in sequence (the
//! `regex` crate, no backtracking) and applies the same validators.
//!
//! - `pii_redact/clean_lines`: realistic log lines with nothing to redact
//!   (JSON, key=value, nginx access, syslog, tracing output, Arabic text, UUIDs,
//!   hashes, timestamps, versions). Targets: ≥ 150 MB/s and ≥ 3× the baseline.
//! - `pii_redact/dense_lines`: the same formats, every line carrying two to
//!   four values to redact (one for the header line). Target: ≥ 60 MB/s.
//!
//! Both run line by line over the same batch, single thread, and report
//! `Throughput::Bytes` of the batch; each group also prints an interleaved
//! median ratio (alternating short chunks of both functions).
#![allow(missing_docs)]
// Benchmark set-up on constant inputs: a failure is a broken bench, not input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hisn_benches::{BASELINE, HISN, interleaved_ratio};
use hisn_pii_redact::{Redactor, validate};
use regex::Regex;

const CLEAN: [&str; 10] = [
    r#"{"ts":"2026-11-27T16:13:13.123Z","level":"INFO","msg":"request completed","status":200,"latency_ms":12,"path":"/api/v1/orders/ORD-2024-000123","request_id":"123e4567-e89b-12d3-a456-426614174000"}"#,
    "level=info msg=\"cache refreshed\" entries=4096 duration=12.5ms build=20240115.1 version=1.2.3 region=me-central-1",
    "GET /static/app.9f2c1e.js HTTP/1.1\" 200 51234 \"https://shop.example/cart\" \"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\"",
    "Nov 27 16:13:13 web-03 systemd[1]: Started Daily apt download activities (pid 4242).",
    "2026-11-27T16:13:13.123456Z  INFO hisn::audit_log::store: segment sealed segment=42 records=65536 sha256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "تم تنفيذ الطلب بنجاح وتم إرسال الإشعار إلى فريق الدعم خلال ١٢ ثانية",
    "worker 7 finished job batch-2024-11-27 in 1834 ms (retries=0, queue=default, priority=5)",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 sampled=true service=checkout",
    "DEBUG sqlx::query: SELECT id, name FROM assets WHERE tenant_id = $1 LIMIT 50; rows affected: 50, elapsed: 1.2ms",
    "order ORD-2024-000123 total 1234.50 SAR qty 3 sku ABC-1234-XYZ shipped via carrier 7",
];

const DENSE: [&str; 10] = [
    r#"{"ts":"2026-11-27T16:13:13Z","user":"ali.alqahtani@example.sa","phone":"+966 50 123 4567","iban":"SA0380000000608010167519"}"#,
    "level=info user=sara@example.com card=4111-1111-1111-1111 ip=192.168.10.24 id=1234567897",
    "203.0.113.9 - - [27/Nov/2026:16:13:13 +0000] \"GET /reset?email=omar%40example.org&t=1 HTTP/1.1\" 200 512",
    "Nov 27 16:13:13 auth-01 sshd[812]: Accepted password for admin from 2001:db8::17 port 52814 ssh2; contact 0559876543",
    "2026-11-27T16:13:13Z  WARN payments: refund to SA03 8000 0000 6080 1016 7519 card 5555 5555 5555 4444 by noor@example.sa",
    "العميل ٠٥٠١٢٣٤٥٦٧ رقم الهوية ۱۲۳۴۵۶۷۸۹۷ البريد khalid@example.sa",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "retrying webhook for tenant acme: key=sk_live_4eC39HqLyjWDarjtT1zdp7dc password=hunter2 to 10.0.0.12",
    "transfer from AE070331234567890123456 to KW81CBKU0000000000001234560101 phone 00971 50 123 4567",
    "new signup fatima@example.com from 198.51.100.23 iqama 2345678904 mobile 966551234567",
];

fn batch(lines: &[&str]) -> Vec<String> {
    (0..100)
        .flat_map(|_| lines.iter().map(|l| (*l).to_owned()))
        .collect()
}

/// One pass of the naive redactor: pattern, placeholder, validator.
type Pass = (Regex, &'static str, fn(&str) -> bool);

/// The naive redactor: one pass per kind, in sequence, same validators.
struct Naive {
    passes: Vec<Pass>,
}

fn digits(s: &str) -> Vec<u8> {
    s.chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| u8::try_from(d).unwrap())
        .collect()
}

impl Naive {
    fn new() -> Self {
        let p = |re: &str, label: &'static str, f: fn(&str) -> bool| {
            (Regex::new(re).unwrap(), label, f)
        };
        Self {
            passes: vec![
                p(
                    r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
                    "[EMAIL]",
                    |_| true,
                ),
                p(
                    r"(?:\+|(?-u:\b)00|(?-u:\b)0|(?-u:\b)966)[0-9][0-9 ().-]{6,18}[0-9]",
                    "[PHONE]",
                    |s| {
                        let n = digits(s).len();
                        (9..=15).contains(&n)
                    },
                ),
                p(
                    r"(?-u:\b)[A-Za-z]{2}[0-9]{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?(?-u:\b)",
                    "[IBAN]",
                    |s| {
                        let c: Vec<u8> = s
                            .bytes()
                            .filter(|b| *b != b' ')
                            .map(|b| b.to_ascii_uppercase())
                            .collect();
                        validate::iban(&c)
                    },
                ),
                p(
                    r"(?-u:\b)[0-9](?:[ -]?[0-9]){11,18}(?-u:\b)",
                    "[CARD]",
                    |s| validate::card(&digits(s)),
                ),
                p(r"(?-u:\b)[12][0-9]{9}(?-u:\b)", "[NATIONAL_ID]", |s| {
                    validate::saudi_national_id(&digits(s))
                }),
                p(
                    r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
                    "[IP]",
                    |s| s.split('.').all(|o| o.parse::<u8>().is_ok()),
                ),
                p(
                    r"(?:[0-9A-Fa-f]{1,4}:){2,7}:?[0-9A-Fa-f]{0,4}",
                    "[IP]",
                    |s| s.parse::<std::net::Ipv6Addr>().is_ok(),
                ),
                p(
                    r"eyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*",
                    "[JWT]",
                    |_| true,
                ),
                p(
                    r"(?i)(?-u:\b)(?:bearer|basic) +[A-Za-z0-9._~+/-]{8,}=*",
                    "[TOKEN]",
                    |_| true,
                ),
                p(
                    r"(?-u:\b)(?:hisn_|sk_live_|sk_test_|ghp_|AKIA|xox[bpae]-|AIza|glpat-)[A-Za-z0-9_-]{10,}",
                    "[API_KEY]",
                    |_| true,
                ),
                p(
                    r#"(?i)(?:password|secret|token|apikey|api_key|authorization|cookie)["']?\s*[:=]\s*"?[^\s",;&]+"#,
                    "[SECRET]",
                    |_| true,
                ),
            ],
        }
    }

    fn redact<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut cur: Cow<'a, str> = Cow::Borrowed(line);
        for (re, label, valid) in &self.passes {
            let next = re.replace_all(&cur, |c: &regex::Captures<'_>| {
                let m = &c[0];
                if valid(m) {
                    (*label).to_owned()
                } else {
                    m.to_owned()
                }
            });
            if let Cow::Owned(s) = next
                && s != *cur
            {
                cur = Cow::Owned(s);
            }
        }
        cur
    }
}

fn group(c: &mut Criterion, name: &str, lines: &[&str]) {
    let lines = batch(lines);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let hisn_r = Redactor::default();
    let naive = Naive::new();
    let hisn = || {
        let mut n = 0;
        for l in &lines {
            n += hisn_r.redact(black_box(l)).len();
        }
        n
    };
    let baseline = || {
        let mut n = 0;
        for l in &lines {
            n += naive.redact(black_box(l)).len();
        }
        n
    };
    let ratio = interleaved_ratio(3, &hisn, &baseline);
    println!(
        "{name}: interleaved median ratio hisn/baseline = {ratio:.3} (time; below 1 is faster)"
    );

    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function(HISN, |b| b.iter(&hisn));
    g.bench_function(BASELINE, |b| b.iter(&baseline));
    g.finish();
}

fn clean_lines(c: &mut Criterion) {
    // The fast path must find nothing in these lines.
    let r = Redactor::default();
    for l in CLEAN {
        assert!(matches!(r.redact(l), Cow::Borrowed(_)), "{l}");
    }
    group(c, "pii_redact/clean_lines", &CLEAN);
}

fn dense_lines(c: &mut Criterion) {
    let r = Redactor::default();
    for l in DENSE {
        assert!(!r.find(l.as_bytes()).is_empty(), "{l}");
    }
    group(c, "pii_redact/dense_lines", &DENSE);
}

criterion_group!(benches, clean_lines, dense_lines);
criterion_main!(benches);
