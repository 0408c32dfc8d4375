//! A deterministic generator of realistic licensing histories, for demonstrations, tests and
//! benchmarks: same estate and seed, same bytes. It writes event lines; it validates nothing
//! (the ledger does) and judges nothing (the rules do).
//!
//! The estate: an Enterprise Agreement with yearly true-up purchases, license servers activated
//! over the first months, a per-device and a per-user pack on each, devices whose CALs renew
//! every 52 to 89 days, users whose CALs are extended at each sign-in, a few revocations,
//! migrations (one completed by the wizard, one finished by hand), a restore and a
//! decommissioned server. Beside it, a handful of small servers under their own agreement plant
//! one finding of each rule, which `Planted` counts.

#![forbid(unsafe_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

/// The size of the estate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estate {
    /// License servers of the main estate.
    pub servers: u32,
    /// Devices on per-device CALs.
    pub devices: u32,
    /// Users on per-user CALs.
    pub users: u32,
    /// Years of history.
    pub years: u32,
    /// The seed: the same seed, the same history.
    pub seed: u64,
}

impl Estate {
    /// An estate of about `n_events` events over three years.
    pub fn for_events(n_events: u64, seed: u64) -> Estate {
        // Over three years a device renews about 15 times and a user signs in about 25 times.
        let per_device = 15.0 + 0.3 * 25.0;
        let devices = ((n_events as f64 / per_device) as u32).max(10);
        let servers = (devices / 5_000).clamp(2, 200);
        Estate { servers, devices, users: devices * 3 / 10, years: 3, seed }
    }
}

/// The findings the planted servers give, by rule, in the order `check` runs them.
pub const PLANTED: &[(&str, u32)] = &[
    ("over_entitlement", 1),
    ("not_entitled", 1),
    ("issued_beyond_installed", 1),
    ("cals_left_on_source", 1),
    ("version_above_server", 1),
    ("resurrected_by_restore", 1),
    ("lost_not_reinstalled", 1),
    ("migration_unknown_pack", 1),
    ("issued_while_inactive", 1),
    ("cal_older_than_host", 1),
    ("revocation_limit", 1),
    ("per_user_revoked", 1),
];

/// xorshift64*: small, fast and the same on every machine. The workspace's one source of
/// reproducible pseudo-random numbers (histories here, test inputs and tamper campaigns in the
/// tests), so that any failure can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from any seed (0 included): the seed is spread over the word first.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next number of the sequence.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

const MAIN: &str = "EA-1000001";
const PLANTED_AGREEMENT: &str = "EA-2000002";

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Writes the lines of the history through `emit`, in time order, and returns how many.
pub fn generate(estate: Estate, emit: &mut dyn FnMut(&str)) -> u64 {
    Generator::new(estate, emit).run()
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Device(u32),
    User(u32),
    Special(u32),
}

struct Server {
    name: String,
    device_pack: String,
    user_pack: String,
}

struct Generator<'a> {
    estate: Estate,
    emit: &'a mut dyn FnMut(&str),
    rng: Rng,
    n: u64,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    servers: Vec<Server>,
    /// The server index each device and user is served by.
    device_server: Vec<u32>,
    user_server: Vec<u32>,
}

impl<'a> Generator<'a> {
    fn new(estate: Estate, emit: &'a mut dyn FnMut(&str)) -> Generator<'a> {
        let start = Utc.with_ymd_and_hms(2023, 1, 2, 8, 0, 0).single().expect("a valid date");
        Generator {
            estate,
            emit,
            rng: Rng::new(estate.seed),
            n: 0,
            start,
            end: start + Duration::days(365 * i64::from(estate.years)),
            servers: Vec::new(),
            device_server: Vec::new(),
            user_server: Vec::new(),
        }
    }

    fn event(&mut self, event_type: &str, at: DateTime<Utc>, data: Value) {
        self.n += 1;
        let line = json!({"id": format!("gen-{:09}", self.n), "type": event_type, "at": time(at), "data": data});
        (self.emit)(&line.to_string());
    }

    fn lsid(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        (0..35).map(|_| ALPHABET[self.rng.range(0, 31) as usize] as char).collect()
    }

    fn activate(&mut self, server: &str, os: &str, at: DateTime<Utc>) {
        let id = self.lsid();
        self.event("server.activated", at, json!({"server": server, "license_server_id": id, "os_version": os, "method": "automatic"}));
    }

    /// Installs a pack of `(agreement, version, cal_type)`.
    fn install(
        &mut self,
        server: &str,
        keypack: &str,
        (agreement, version, cal_type): (&str, &str, &str),
        quantity: u64,
        at: DateTime<Utc>,
    ) {
        self.event(
            "keypack.installed",
            at,
            json!({"server": server, "keypack": keypack, "agreement": agreement, "product_version": version, "cal_type": cal_type, "quantity": quantity}),
        );
    }

    fn purchase(
        &mut self,
        agreement: &str,
        version: &str,
        cal_type: &str,
        quantity: u64,
        at: DateTime<Utc>,
    ) {
        self.event("agreement.purchased", at, json!({"agreement": agreement, "program": "enterprise_agreement", "product_version": version, "cal_type": cal_type, "quantity": quantity, "anniversary": "01-01"}));
    }

    fn issue(
        &mut self,
        server: &str,
        keypack: &str,
        holder: &str,
        at: DateTime<Utc>,
        days: Option<i64>,
        host_version: &str,
    ) {
        let mut data = json!({"server": server, "keypack": keypack, "holder": holder, "session_host": "rdsh01.estate.example", "session_host_version": host_version});
        if let Some(days) = days {
            data["expires_at"] = json!(time(at + Duration::days(days)));
        }
        self.event("cal.issued", at, data);
    }

    fn run(mut self) -> u64 {
        let e = self.estate;
        let start = self.start;
        let servers = e.servers.max(2);
        let per_server_devices = u64::from(e.devices.div_ceil(servers)) + 10;
        let per_server_users = u64::from(e.users.div_ceil(servers)) + 10;
        // What the estate bought: enough for every pack, plus a yearly true-up order below.
        let devices_bought = per_server_devices * u64::from(servers) * 2;
        let users_bought = per_server_users * u64::from(servers) * 2;
        self.purchase(MAIN, "2022", "per_device", devices_bought.min(1_000_000), start);
        self.purchase(MAIN, "2022", "per_user", users_bought.min(1_000_000), start);
        for i in 0..servers {
            let name = format!("ls{i:03}.estate.example");
            let at = start + Duration::days(i64::from(i % 60));
            self.activate(&name, "2022", at);
            let device_pack = format!("ls{i:03}/2");
            let user_pack = format!("ls{i:03}/3");
            self.install(
                &name,
                &device_pack,
                (MAIN, "2022", "per_device"),
                per_server_devices.min(1_000_000),
                at,
            );
            self.install(
                &name,
                &user_pack,
                (MAIN, "2022", "per_user"),
                per_server_users.min(1_000_000),
                at,
            );
            self.servers.push(Server { name, device_pack, user_pack });
        }
        self.planted_setup();
        let mut due: BinaryHeap<Reverse<(DateTime<Utc>, Due)>> = BinaryHeap::new();
        for d in 0..e.devices {
            self.device_server.push(d % servers);
            let first = start
                + Duration::days(i64::from(d % servers % 60))
                + Duration::minutes(self.rng.range(60, 60 * 24 * 30) as i64);
            due.push(Reverse((first, Due::Device(d))));
        }
        for u in 0..e.users {
            self.user_server.push(u % servers);
            let first = start
                + Duration::days(i64::from(u % servers % 60))
                + Duration::minutes(self.rng.range(60, 60 * 24 * 30) as i64);
            due.push(Reverse((first, Due::User(u))));
        }
        let span = self.end - start;
        for (i, fraction) in [(0u32, 0.30), (1, 0.45), (2, 0.55), (3, 0.70), (4, 0.80)] {
            let at = start + Duration::seconds((span.num_seconds() as f64 * fraction) as i64);
            due.push(Reverse((at, Due::Special(i))));
        }
        for year in 1..e.years {
            let at = Utc
                .with_ymd_and_hms(2023 + year as i32, 1, 1, 0, 0, 0)
                .single()
                .expect("a valid date")
                - Duration::days(45);
            due.push(Reverse((at, Due::Special(100 + year))));
        }
        while let Some(Reverse((at, what))) = due.pop() {
            if at >= self.end {
                break;
            }
            match what {
                Due::Device(d) => {
                    let s = self.device_server[d as usize] as usize;
                    let (server, pack) =
                        (self.servers[s].name.clone(), self.servers[s].device_pack.clone());
                    let holder = format!("PC-{d:07}");
                    let lifetime = self.rng.range(52, 89) as i64;
                    self.issue(&server, &pack, &holder, at, Some(lifetime), "2022");
                    // A few devices are replaced: their CAL is revoked a while later.
                    if self.rng.range(0, 999) < 3 {
                        self.event(
                            "cal.revoked",
                            at + Duration::hours(1),
                            json!({"server": server, "keypack": pack, "holder": holder}),
                        );
                    }
                    due.push(Reverse((
                        at + Duration::days(lifetime - self.rng.range(0, 6) as i64),
                        what,
                    )));
                }
                Due::User(u) => {
                    let s = self.user_server[u as usize] as usize;
                    let (server, pack) =
                        (self.servers[s].name.clone(), self.servers[s].user_pack.clone());
                    self.issue(
                        &server,
                        &pack,
                        &format!("ESTATE\\user{u:07}"),
                        at,
                        Some(60),
                        "2022",
                    );
                    due.push(Reverse((at + Duration::days(self.rng.range(20, 50) as i64), what)));
                }
                Due::Special(k) => self.special(k, at),
            }
        }
        self.planted_history();
        self.n
    }

    /// Migrations, a restore and a decommission in the main estate, none of which is a finding.
    fn special(&mut self, k: u32, at: DateTime<Utc>) {
        let last = self.servers.len() - 1;
        match k {
            // Server 0 replaced by a new one; the wizard reached it and removed the CALs.
            0 | 1 => {
                let from = if k == 0 { 0 } else { last };
                let name = format!("ls{from:03}-new.estate.example");
                self.activate(&name, "2022", at);
                for (pack_kind, new_pack) in [
                    ("device", format!("ls{from:03}-new/2")),
                    ("user", format!("ls{from:03}-new/3")),
                ] {
                    let old = if pack_kind == "device" {
                        self.servers[from].device_pack.clone()
                    } else {
                        self.servers[from].user_pack.clone()
                    };
                    let quantity = self.pack_quantity(pack_kind);
                    let by_hand = k == 1;
                    self.event("cals.migrated", at + Duration::minutes(5), json!({
                        "source": self.servers[from].name, "target": name, "reason": "source_replaced",
                        "source_reachable": !by_hand, "from_keypack": old, "keypack": new_pack,
                        "quantity": quantity, "source_removed": !by_hand}));
                    if by_hand {
                        let migration = format!("gen-{:09}", self.n);
                        self.event(
                            "source.cals_removed",
                            at + Duration::days(9),
                            json!({
                            "server": self.servers[from].name, "keypack": old, "quantity": quantity,
                            "migration": migration, "method": "wmi"}),
                        );
                    }
                }
                let old_name = self.servers[from].name.clone();
                self.event(
                    "server.deactivated",
                    at + Duration::days(30),
                    json!({"server": old_name, "method": "automatic"}),
                );
                self.servers[from] = Server {
                    name,
                    device_pack: format!("ls{from:03}-new/2"),
                    user_pack: format!("ls{from:03}-new/3"),
                };
            }
            // A restore of the same machine from last night's backup: nothing moved since.
            2 => {
                let server = self.servers[1 % self.servers.len()].name.clone();
                self.event("server.restored", at, json!({"server": server, "backup_taken_at": time(at - Duration::hours(6)), "same_machine": true, "os_replaced": false}));
            }
            // A reactivation after the certificate expired, by telephone.
            3 => {
                let server = self.servers[0].name.clone();
                let id = self.lsid();
                self.event("server.reactivated", at, json!({"server": server, "license_server_id": id, "reason": "certificate_expired", "method": "telephone"}));
            }
            4 => {}
            // The yearly true-up order, 45 days before the anniversary.
            year => {
                let extra = 10 + u64::from(year % 100) * 5;
                self.purchase(MAIN, "2022", "per_user", extra, at);
            }
        }
    }

    fn pack_quantity(&self, pack_kind: &str) -> u64 {
        let servers = self.estate.servers.max(2);
        let quantity = if pack_kind == "device" {
            u64::from(self.estate.devices.div_ceil(servers)) + 10
        } else {
            u64::from(self.estate.users.div_ceil(servers)) + 10
        };
        quantity.min(1_000_000)
    }

    /// The small servers of the planted findings, set up on the first day.
    fn planted_setup(&mut self) {
        let at = self.start;
        // Bought: per device 50 + 20 + 10; per user 5 + 3 + 10.
        self.purchase(PLANTED_AGREEMENT, "2022", "per_device", 80, at);
        self.purchase(PLANTED_AGREEMENT, "2022", "per_user", 18, at);
        for (server, os) in [
            ("p-src", "2022"),
            ("p-dst", "2022"),
            ("p-users", "2022"),
            ("p-old", "2019"),
            ("p-restore", "2022"),
            ("p-new", "2022"),
            ("p-lost", "2022"),
            ("p-kiosk", "2022"),
        ] {
            self.activate(&format!("{server}.planted.example"), os, at);
        }
        self.install(
            "p-src.planted.example",
            "p-src/2",
            (PLANTED_AGREEMENT, "2022", "per_device"),
            50,
            at,
        );
        self.install(
            "p-users.planted.example",
            "p-users/2",
            (PLANTED_AGREEMENT, "2022", "per_user"),
            5,
            at,
        );
        self.install(
            "p-old.planted.example",
            "p-old/2",
            (PLANTED_AGREEMENT, "2022", "per_user"),
            3,
            at,
        );
        self.install(
            "p-restore.planted.example",
            "p-restore/2",
            (PLANTED_AGREEMENT, "2022", "per_device"),
            20,
            at,
        );
        self.install(
            "p-lost.planted.example",
            "p-lost/2",
            (PLANTED_AGREEMENT, "2022", "per_user"),
            10,
            at,
        );
        self.install(
            "p-kiosk.planted.example",
            "p-kiosk/2",
            (PLANTED_AGREEMENT, "2022", "per_device"),
            10,
            at,
        );
        // not_entitled: a pack under an agreement with no purchase.
        self.install(
            "p-kiosk.planted.example",
            "p-kiosk/3",
            ("EA-9999999", "2022", "per_user"),
            2,
            at,
        );
    }

    /// The planted findings, at the end of the history.
    fn planted_history(&mut self) {
        let t = self.end - Duration::days(120);
        let day = |n: i64| t + Duration::days(n);
        // cals_left_on_source and, with the restore below, over_entitlement: a migration whose
        // source was never cleaned up.
        self.event("cals.migrated", day(0), json!({"source": "p-src.planted.example", "target": "p-dst.planted.example", "reason": "source_not_functioning", "source_reachable": false, "from_keypack": "p-src/2", "keypack": "p-dst/2", "quantity": 50, "source_removed": false}));
        // issued_beyond_installed: 7 users on 5 per-user CALs, still active when the estate is
        // checked years later (their expiry is far out), so the finding does not depend on the
        // day the check runs. A "revocation" of one of them: per_user_revoked.
        for u in 0..7 {
            self.issue(
                "p-users.planted.example",
                "p-users/2",
                &format!("PLANTED\\user{u}"),
                day(1),
                Some(365 * 40),
                "2022",
            );
        }
        self.event("cal.revoked", day(2), json!({"server": "p-users.planted.example", "keypack": "p-users/2", "holder": "PLANTED\\user0"}));
        // migration_unknown_pack: CALs from a license server the ledger never knew, without
        // the wizard's inputs.
        self.event("cals.migrated", day(2), json!({"source": "p-ghost.planted.example", "target": "p-dst.planted.example", "reason": "source_not_functioning", "source_reachable": false, "from_keypack": "p-ghost/2", "keypack": "p-dst/3", "quantity": 5, "source_removed": false}));
        // resurrected_by_restore: CALs migrated away after the backup come back.
        self.event("cals.migrated", day(2), json!({"source": "p-restore.planted.example", "target": "p-new.planted.example", "reason": "source_replaced", "source_reachable": true, "from_keypack": "p-restore/2", "keypack": "p-new/2", "quantity": 20, "source_removed": true}));
        self.event("server.restored", day(5), json!({"server": "p-restore.planted.example", "backup_taken_at": time(day(1)), "same_machine": true, "os_replaced": false}));
        // lost_not_reinstalled: a restore onto a reinstalled OS keeps only the issued CALs.
        for u in 0..2 {
            self.issue(
                "p-lost.planted.example",
                "p-lost/2",
                &format!("PLANTED\\lost{u}"),
                day(3),
                None,
                "2022",
            );
        }
        self.event("server.restored", day(6), json!({"server": "p-lost.planted.example", "backup_taken_at": time(day(4)), "same_machine": true, "os_replaced": true}));
        // issued_while_inactive, cal_older_than_host and revocation_limit on one kiosk server.
        self.event(
            "server.deactivated",
            day(7),
            json!({"server": "p-kiosk.planted.example", "method": "automatic"}),
        );
        self.issue("p-kiosk.planted.example", "p-kiosk/2", "KIOSK-0", day(8), Some(60), "2022");
        self.event("server.reactivated", day(9), json!({"server": "p-kiosk.planted.example", "license_server_id": "KIOSKKIOSKKIOSKKIOSKKIOSKKIOSKKIOSK", "reason": "certificate_expired", "method": "telephone"}));
        self.issue("p-kiosk.planted.example", "p-kiosk/2", "KIOSK-1", day(10), Some(60), "2025");
        for k in 2..5 {
            self.issue(
                "p-kiosk.planted.example",
                "p-kiosk/2",
                &format!("KIOSK-{k}"),
                day(10),
                Some(60),
                "2022",
            );
        }
        for k in 2..5 {
            self.event("cal.revoked", day(11 + k), json!({"server": "p-kiosk.planted.example", "keypack": "p-kiosk/2", "holder": format!("KIOSK-{k}")}));
        }
    }
}
