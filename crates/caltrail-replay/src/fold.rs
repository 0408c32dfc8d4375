//! Folding events into state, in valid-time order (`at`, then `seq`), up to an as-of point.
//! The caller hands events over in that order (`order::out_of_order` finds the few that a
//! ledger holds out of it); names are known ahead from every considered entry (`know`).

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use caltrail_events::{
    AgreementPurchased, CalIssued, CalRevoked, CalType, CalsMigrated, Event, EventData,
    KeypackInstalled, ProductVersion, ServerActivated, ServerDatabaseRebuilt, ServerName,
    Timestamp,
};
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use rustc_hash::FxBuildHasher;

use crate::rows::{
    AgreementRow, CalRow, DebtRow, EventFields, EventRow, HolderRow, IssueRow, KeypackRow,
    MigrationRow, Origin, PurchaseRow, QuantityChangeRow, RestoreRow, RevocationRow, ServerRow,
    ServerStatus, StatusChangeRow, StepRow, TrueUpYearRow, UseInterval,
};
use crate::strings::{Strings, Sym};

use crate::issues::Issues;
use crate::licence::{self, add_days, level_of};

/// How many events to give `Replay::look_ahead` at a time, and how many CALs issued it reads
/// ahead for at once: their misses overlap, and what they bring stays in the cache until
/// `apply` uses it.
pub const LOOK_AHEAD: usize = 64;

/// Which events count (EVENTS.md, "Time").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// Every event; "active" is judged at the current time.
    Latest,
    /// The first N entries; "active" is judged at the latest `at` among them (retractions
    /// left out). The caller hands over only those entries.
    Seq(u64),
    /// The events whose `at` is at or before T, plus every retraction; judged at T.
    Time(Timestamp),
}

impl AsOf {
    /// Whether the entry `seq` holding `event` is among the events that count at this point:
    /// what `Replay::apply` folds and the `events` table lists.
    pub fn includes(self, seq: u64, event: &Event) -> bool {
        match self {
            AsOf::Latest => true,
            AsOf::Seq(n) => seq <= n,
            // A retraction applies whatever its `at` (EVENTS.md, "Time").
            AsOf::Time(t) => event.at <= t || matches!(event.data, EventData::EventRetracted(_)),
        }
    }
}

/// What a pack is, known from the event that creates it whatever its `at`: a CAL imported with
/// an `IssueDate` before its pack's install still belongs to that pack.
#[derive(Debug, Clone)]
pub(crate) struct PackKind {
    pub(crate) agreement: String,
    pub(crate) product_version: ProductVersion,
    pub(crate) cal_type: CalType,
    pub(crate) downgraded_from: Option<ProductVersion>,
}

impl PackKind {
    /// What an installed pack is, as its event says.
    fn installed(e: &KeypackInstalled) -> PackKind {
        PackKind {
            agreement: e.agreement.as_str().to_owned(),
            product_version: e.product_version,
            cal_type: e.cal_type,
            downgraded_from: e.downgraded_from,
        }
    }
}

/// The state the events describe, as rows. Built by `apply` in ledger order, then `finish`.
#[derive(Debug)]
pub struct Replay {
    pub(crate) as_of: AsOf,
    /// When "active" is judged.
    pub active_at: Timestamp,
    /// The last entry applied, 0 when none.
    pub last_seq: u64,
    /// How many entries were applied (retracted ones included).
    pub n_applied: u64,
    /// The latest `at` of the events applied, retractions left out: when `AsOf::Seq` judges,
    /// and where the entries that extend a snapshot of this state must start.
    pub(crate) latest_at: Option<Timestamp>,
    /// Whether `finish` has run: a finished state is judged at one time and is no snapshot.
    pub(crate) finished: bool,
    /// Whether `events` rows are kept (the table is large and only some queries read it).
    pub(crate) keep_events: bool,
    /// The `events` table, when the replay keeps it.
    pub events: Vec<EventRow>,
    /// Per CAL (same index as `cals`): its holder's name in lower case.
    pub(crate) holder_keys: Vec<Sym>,
    /// By name; unordered (looked up for every event), so readers sort by name.
    pub servers: HashMap<ServerName, ServerRow, FxBuildHasher>,
    /// The `agreements` table, by agreement, version and type.
    pub agreements: BTreeMap<(String, ProductVersion, CalType), AgreementRow>,
    /// The `purchases` table.
    pub purchases: Vec<PurchaseRow>,
    /// The `keypacks` table.
    pub keypacks: Vec<KeypackRow>,
    pub(crate) keypack_index: HashMap<String, usize, FxBuildHasher>,
    /// Per pack (same index): `(at, quantity after)` of every change, for restores.
    pub(crate) timelines: Vec<Vec<(Timestamp, u64)>>,
    /// The `cals` table.
    pub cals: Vec<CalRow>,
    /// By pack and lower-cased holder: a holder's name is not case-sensitive.
    pub(crate) cal_index: HashMap<(Sym, Sym), usize, FxBuildHasher>,
    /// By the index of a holder's lower-cased handle: the row of the CAL last issued to that
    /// holder, plus one (0: none yet). A hint, checked against the row (`hinted_cal`), with
    /// `cal_index` behind it: most CAL events renew the holder's last CAL, found here with a
    /// read of a small array instead of a probe of the map (two cache misses on a large
    /// estate, for every such event). Not in a snapshot: it fills again as CALs are issued.
    latest_cal: Vec<u32>,
    /// The texts `issues` rows refer to.
    pub strings: Strings,
    /// Retracted event ids, with the id of the retraction (EVENTS.md, `event.retracted`).
    pub(crate) retracted_by: HashMap<String, String>,
    /// Pack-creating events seen by `know`, resolved into `pack_kinds` at the first `apply`.
    pub(crate) pending_definitions: Vec<Event>,
    pub(crate) pack_kinds: HashMap<Sym, PackKind, FxBuildHasher>,
    /// Earlier incarnations of server names (the current one is in `servers`).
    pub past_servers: Vec<ServerRow>,
    /// The `migrations` table.
    pub migrations: Vec<MigrationRow>,
    pub(crate) migration_index: HashMap<String, usize>,
    /// The `server_status` table.
    pub status_changes: Vec<StatusChangeRow>,
    /// The `issues` table.
    pub issues: Issues,
    /// The `revocations` table.
    pub revocations: Vec<RevocationRow>,
    /// The `restores` table.
    pub restores: Vec<RestoreRow>,
    /// The `quantity_changes` table.
    pub quantity_changes: Vec<QuantityChangeRow>,
    /// True-up years of every agreement (RULES.md, "Reports", `true_up`).
    pub true_up_years: Vec<TrueUpYearRow>,
    /// When each version was made available to volume licensing (`licence::made_available`).
    pub made_available: Vec<(ProductVersion, Timestamp)>,
    /// Stretches of time each CAL was active, closed as the fold goes and by `finish`.
    pub intervals: Vec<UseInterval>,
    /// Holders in use at the judged time (`finish`).
    pub holders: Vec<HolderRow>,
    /// Counts at or above each level over time (`finish`).
    pub in_use_steps: Vec<StepRow>,
    /// The `rights_changes` table.
    pub rights_steps: Vec<StepRow>,
    /// The `installed_changes` table.
    pub installed_steps: Vec<StepRow>,
    /// Every CAL type and level with a purchase, a pack or a holder (`finish`).
    pub estate_levels: Vec<(CalType, ProductVersion)>,
    /// Per pack (same index as `keypacks`): `(at, quantity)` of every removal and migration
    /// that took CALs out, for what a restore brings back.
    pub(crate) left: Vec<Vec<(Timestamp, u64)>>,
    pub(crate) debt_map: BTreeMap<DebtKey, DebtRow>,
    /// What servers are owed (`finish`: those still owed).
    pub debts: Vec<DebtRow>,
}

/// A server incarnation, agreement, requirement and CAL type.
pub(crate) type DebtKey = (ServerName, u32, String, ProductVersion, CalType);

impl Replay {
    /// An empty state. `now` is when "active" is judged for `AsOf::Latest`.
    pub fn new(as_of: AsOf, now: Timestamp, keep_events: bool) -> Replay {
        let active_at = match as_of {
            AsOf::Time(t) => t,
            // Until `finish`: then the latest `at` of the events applied.
            AsOf::Seq(_) | AsOf::Latest => now,
        };
        Replay {
            as_of,
            active_at,
            last_seq: 0,
            n_applied: 0,
            latest_at: None,
            finished: false,
            keep_events,
            events: Vec::new(),
            holder_keys: Vec::new(),
            servers: HashMap::default(),
            agreements: BTreeMap::new(),
            purchases: Vec::new(),
            keypacks: Vec::new(),
            keypack_index: HashMap::default(),
            timelines: Vec::new(),
            cals: Vec::new(),
            cal_index: HashMap::default(),
            latest_cal: Vec::new(),
            strings: Strings::default(),
            retracted_by: HashMap::new(),
            pending_definitions: Vec::new(),
            pack_kinds: HashMap::default(),
            past_servers: Vec::new(),
            migrations: Vec::new(),
            migration_index: HashMap::new(),
            status_changes: Vec::new(),
            issues: Issues::default(),
            revocations: Vec::new(),
            restores: Vec::new(),
            quantity_changes: Vec::new(),
            true_up_years: Vec::new(),
            made_available: licence::made_available(),
            intervals: Vec::new(),
            holders: Vec::new(),
            in_use_steps: Vec::new(),
            rights_steps: Vec::new(),
            installed_steps: Vec::new(),
            estate_levels: Vec::new(),
            left: Vec::new(),
            debt_map: BTreeMap::new(),
            debts: Vec::new(),
        }
    }

    /// Makes room for the rows of `n_events` events at most. A large replay otherwise grows
    /// its per-event table by doubling, copying it each time and holding two copies at the
    /// peak; the room reserved and never written costs address space, not memory.
    pub fn reserve(&mut self, n_events: usize) {
        self.issues.reserve(n_events);
    }

    /// Puts the `issues` rows folded from now on, a block at a time as each fills, in `file`
    /// (new and empty), where `write_spilled_snapshot` then writes the rest of the snapshot:
    /// a replay from the first entry that will be written as a snapshot never holds that table
    /// whole. Call it before the first `apply`; a state with rows already ignores it.
    pub fn spill_issues_to(&mut self, file: std::fs::File) {
        self.issues.spill_to(file);
    }

    /// The last `seq` worth reading for this as-of point, if there is one.
    pub fn until_seq(&self) -> Option<u64> {
        match self.as_of {
            AsOf::Seq(n) => Some(n),
            _ => None,
        }
    }

    /// Takes note of a known entry before the fold, whatever its `at`: retractions, and the
    /// events that create packs, so that names resolve against every known entry. Call it for
    /// those entries (others are ignored), in chain order, before the first `apply`.
    pub fn know(&mut self, event: &Event) {
        match &event.data {
            EventData::EventRetracted(e) => {
                self.retracted_by
                    .insert(e.retracts.as_str().to_owned(), event.id.as_str().to_owned());
            }
            EventData::KeypackInstalled(_) | EventData::CalsMigrated(_) => {
                self.pending_definitions.push(event.clone());
            }
            _ => {}
        }
    }

    /// Reads, for the CALs issued among `events` (the next ones `apply` is given), what their
    /// `apply` will read: the holder's slot in the text index, the CAL's in `cal_index`, then
    /// its row. On a large estate each is a cache miss, and `apply` meets them one after the
    /// other, each waiting for the last. Here they are taken stage by stage over all the
    /// events, so the misses of different events overlap. It changes nothing: `apply` does its
    /// own lookups, and finds what it needs in the cache.
    pub fn look_ahead<'e>(&self, events: impl Iterator<Item = &'e Event>) {
        let mut issued: [Option<&CalIssued>; LOOK_AHEAD] = [None; LOOK_AHEAD];
        let mut n = 0;
        for event in events {
            if let EventData::CalIssued(e) = &event.data {
                issued[n] = Some(e);
                n += 1;
                if n == LOOK_AHEAD {
                    self.touch_cals(&issued);
                    n = 0;
                }
            }
        }
        self.touch_cals(&issued[..n]);
    }

    /// `look_ahead` for up to `LOOK_AHEAD` CALs issued, a stage at a time: each loop's
    /// lookups do not wait on each other.
    fn touch_cals(&self, issued: &[Option<&CalIssued>]) {
        let mut holders = [None; LOOK_AHEAD];
        for (holder, e) in holders.iter_mut().zip(issued.iter().flatten()) {
            *holder = self.strings.find_known_lower(e.holder.as_str());
        }
        let mut rows = [None; LOOK_AHEAD];
        for ((row, holder), e) in rows.iter_mut().zip(holders).zip(issued.iter().flatten()) {
            if let Some((_, Some(lower))) = holder
                && let Some(keypack) = self.strings.find(e.keypack.as_str())
            {
                *row = self.find_cal((keypack, lower));
            }
        }
        for index in rows.into_iter().flatten() {
            if let Some(cal) = self.cals.get(index) {
                std::hint::black_box((cal.active_until, cal.open_interval, cal.n_issues));
            }
        }
    }

    /// Whether `know` needs to see this event.
    pub fn is_known_ahead(event_type: caltrail_events::EventType) -> bool {
        use caltrail_events::EventType;
        matches!(
            event_type,
            EventType::EventRetracted | EventType::KeypackInstalled | EventType::CalsMigrated
        )
    }

    /// The kinds of every pack `know` saw and no retraction took back. A migrated pack is what
    /// its source pack is, else what the migration says; sources are resolved until nothing
    /// changes, since a migration may be recorded before its source pack.
    fn resolve_definitions(&mut self) {
        let definitions = std::mem::take(&mut self.pending_definitions);
        let live: Vec<&Event> =
            definitions.iter().filter(|e| !self.retracted_by.contains_key(e.id.as_str())).collect();
        let mut kinds: HashMap<&str, PackKind> = HashMap::new();
        for event in &live {
            if let EventData::KeypackInstalled(e) = &event.data {
                kinds.insert(e.keypack.as_str(), PackKind::installed(e));
            }
        }
        // A replay extending a snapshot knows the packs of the entries before it already.
        let known =
            |name: &str| self.strings.find(name).and_then(|sym| self.pack_kinds.get(&sym)).cloned();
        loop {
            let mut added = false;
            for event in &live {
                let EventData::CalsMigrated(e) = &event.data else { continue };
                if kinds.contains_key(e.keypack.as_str()) {
                    continue;
                }
                let source = kinds
                    .get(e.from_keypack.as_str())
                    .cloned()
                    .or_else(|| known(e.from_keypack.as_str()));
                if let Some(kind) = migrated_kind(source.as_ref(), e) {
                    kinds.insert(e.keypack.as_str(), kind);
                    added = true;
                }
            }
            if !added {
                break;
            }
        }
        for (name, kind) in kinds {
            let sym = self.strings.intern(name);
            self.pack_kinds.insert(sym, kind);
        }
    }

    /// Applies one entry if the as-of point includes it. Entries come in valid-time order.
    pub fn apply(&mut self, seq: u64, recorded_at: Timestamp, hash: &str, event: &Event) {
        if !self.pending_definitions.is_empty() {
            self.resolve_definitions();
        }
        if !self.as_of.includes(seq, event) {
            return;
        }
        let is_retraction = matches!(event.data, EventData::EventRetracted(_));
        // Kept whatever the as-of point: `AsOf::Seq` judges at it, and a snapshot is extended
        // only by entries at or after it.
        if !is_retraction {
            self.latest_at = Some(self.latest_at.map_or(event.at, |t| t.max(event.at)));
        }
        self.last_seq = self.last_seq.max(seq);
        // Looked up only when the ledger retracts anything: it costs a hash per event.
        let retracted_by = if self.retracted_by.is_empty() {
            None
        } else {
            self.retracted_by.get(event.id.as_str()).cloned()
        };
        if self.keep_events {
            let mut row = event_row(seq, recorded_at, hash, event);
            row.retracted_by.clone_from(&retracted_by);
            self.events.push(row);
        }
        if is_retraction || retracted_by.is_some() {
            return;
        }
        self.n_applied += 1;
        // A CAL issued looks its server up itself, once for both.
        if !matches!(event.data, EventData::CalIssued(_)) {
            for server in event.servers() {
                // Nearly always known: one lookup, and a row made only for a new server.
                if !self.servers.contains_key(server) {
                    self.server(server);
                }
            }
        }
        let at = event.at;
        match &event.data {
            EventData::AgreementPurchased(e) => self.purchased(seq, at, event, e),
            EventData::ServerActivated(e) => self.activated(seq, at, e),
            EventData::ServerDecommissioned(e) => self.decommission(seq, at, &e.server),
            EventData::EventRetracted(_) => {}
            EventData::ServerReactivated(e) => {
                let row = self.server(&e.server);
                row.status = ServerStatus::Activated;
                row.license_server_id = Some(e.license_server_id.as_str().to_owned());
                if let Some(os) = e.os_version {
                    row.os_version = Some(os);
                }
                row.reactivated_at = Some(at);
                self.status_changed(seq, at, &e.server);
            }
            EventData::ServerDeactivated(e) => {
                let row = self.server(&e.server);
                row.status = ServerStatus::Deactivated;
                row.deactivated_at = Some(at);
                self.status_changed(seq, at, &e.server);
            }
            EventData::KeypackInstalled(e) => self.install(seq, event, e),
            EventData::KeypackRemoved(e) => {
                if let Some(index) = self.keypack_index.get(e.keypack.as_str()).copied() {
                    let current = self.keypacks[index].current_quantity;
                    let wanted = e.quantity.map_or(current, |q| u64::from(q.get()));
                    let taken = self.take_out(seq, at, index, wanted);
                    // Any removal from a migration's source pack completes it (RULES.md,
                    // `cals_left_on_source`): the pack's migrations, oldest first.
                    self.cover_migrations(e.keypack.as_str(), None, taken, at, event.id.as_str());
                }
            }
            EventData::CalsMigrated(e) => self.migrated(seq, at, event, e),
            EventData::SourceCalsRemoved(e) => {
                let quantity = u64::from(e.quantity.get());
                if let Some(index) = self.keypack_index.get(e.keypack.as_str()).copied() {
                    self.take_out(seq, at, index, quantity);
                }
                let named =
                    e.migration.as_ref().and_then(|id| self.migration_index.get(id.as_str()));
                self.cover_migrations(
                    e.keypack.as_str(),
                    named.copied(),
                    quantity,
                    at,
                    event.id.as_str(),
                );
            }
            EventData::CalIssued(e) => self.issued(seq, at, event, e),
            EventData::CalRevoked(e) => self.revoked(seq, at, event, e),
            EventData::ServerRestored(e) => self.restore(seq, event.id.as_str(), at, e),
            EventData::ServerDatabaseRebuilt(e) => self.rebuilt(seq, at, event, e),
        }
    }

    /// A purchase: the agreement's sums and a `purchases` row.
    fn purchased(&mut self, seq: u64, at: Timestamp, event: &Event, e: &AgreementPurchased) {
        let key = (e.agreement.as_str().to_owned(), e.product_version, e.cal_type);
        let quantity = u64::from(e.quantity.get());
        let row = self.agreements.entry(key).or_insert_with(|| AgreementRow {
            agreement: e.agreement.as_str().to_owned(),
            program: e.program.as_str(),
            number: None,
            product_version: e.product_version,
            cal_type: e.cal_type,
            purchased: 0,
            n_purchases: 0,
            anniversary: None,
            first_purchased_at: at,
            last_purchased_at: at,
        });
        row.program = e.program.as_str();
        row.purchased += quantity;
        row.n_purchases += 1;
        row.first_purchased_at = row.first_purchased_at.min(at);
        row.last_purchased_at = row.last_purchased_at.max(at);
        if let Some(number) = &e.number {
            row.number = Some(number.clone());
        }
        if let Some(anniversary) = e.anniversary {
            row.anniversary = Some(anniversary.to_string());
        }
        self.purchases.push(PurchaseRow {
            seq,
            id: event.id.as_str().to_owned(),
            at,
            agreement: e.agreement.as_str().to_owned(),
            program: e.program.as_str(),
            product_version: e.product_version,
            cal_type: e.cal_type,
            quantity,
            anniversary: e.anniversary,
            software_assurance_until: e
                .software_assurance_until
                .map(caltrail_events::DateOrTime::end),
            rights_through: e.rights_through,
            ceiling: e.product_version,
        });
    }

    /// An activation; a decommissioned name activated again is a new incarnation.
    fn activated(&mut self, seq: u64, at: Timestamp, e: &ServerActivated) {
        if self.servers[&e.server].status == ServerStatus::Decommissioned {
            // A new machine of the old name: its own database, no packs.
            let past = self.servers.remove(&e.server).expect("invariant: just found");
            let incarnation = past.incarnation + 1;
            self.past_servers.push(past);
            self.server(&e.server).incarnation = incarnation;
        }
        let row = self.server(&e.server);
        row.status = ServerStatus::Activated;
        row.license_server_id = Some(e.license_server_id.as_str().to_owned());
        row.os_version = Some(e.os_version);
        row.activated_at = Some(at);
        row.opening = e.opening;
        self.status_changed(seq, at, &e.server);
    }

    /// A migration: the source pack gives up its CALs if the wizard removed them, the target gets a pack when what the CALs are is known, and a `migrations` row.
    fn migrated(&mut self, seq: u64, at: Timestamp, event: &Event, e: &CalsMigrated) {
        let quantity = u64::from(e.quantity.get());
        let source = self.keypack_index.get(e.from_keypack.as_str()).copied();
        if let Some(source) = source
            && e.source_removed
        {
            self.take_out(seq, at, source, quantity);
        }
        let source_incarnation = match source {
            Some(index) => self.keypacks[index].incarnation,
            None => self.servers[&e.source].incarnation,
        };
        // The new pack inherits agreement, version, type and downgrade from the source
        // pack (EVENTS.md), known ahead whatever its `at`; for a source the ledger never
        // knew, from the event itself. Without either its CALs cannot be counted.
        let new_sym = self.strings.intern(e.keypack.as_str());
        let kind = self.pack_kinds.get(&new_sym).cloned().or_else(|| {
            let from = self.strings.intern(e.from_keypack.as_str());
            migrated_kind(self.pack_kinds.get(&from), e)
        });
        let pack_known = kind.is_some();
        if let Some(kind) = kind {
            let incarnation = self.servers[&e.target].incarnation;
            let mut pack =
                new_pack(kind, e.keypack.as_str(), &e.target, incarnation, seq, event, quantity);
            pack.origin = Origin::Migrated;
            pack.migration = Some(event.id.as_str().to_owned());
            pack.from_keypack = Some(e.from_keypack.as_str().to_owned());
            self.add_pack(seq, pack);
        }
        let target_incarnation = self.servers[&e.target].incarnation;
        self.migration_index.insert(event.id.as_str().to_owned(), self.migrations.len());
        self.migrations.push(MigrationRow {
            migration: event.id.as_str().to_owned(),
            seq,
            at,
            source: e.source.clone(),
            target: e.target.clone(),
            reason: e.reason.as_str(),
            source_reachable: e.source_reachable,
            from_keypack: e.from_keypack.as_str().to_owned(),
            source_incarnation,
            target_incarnation,
            keypack: e.keypack.as_str().to_owned(),
            quantity,
            source_removed: e.source_removed,
            agreement: e.agreement.as_ref().map(|a| a.as_str().to_owned()),
            product_version: e.product_version,
            cal_type: e.cal_type,
            source_license_server_id: e
                .source_license_server_id
                .as_ref()
                .map(|id| id.as_str().to_owned()),
            pack_known,
            removed_by_hand: 0,
            removals: Vec::new(),
            removed_at: None,
            not_removed: if e.source_removed { 0 } else { quantity },
        });
    }

    /// A CAL issued: an `issues` row, and the holder's CAL made or renewed, with the stretch it is active in.
    /// A CAL issued again to its holder from the same pack: a renewal of the same row.
    fn renew(
        &mut self,
        index: usize,
        at: Timestamp,
        e: &CalIssued,
        texts: IssuedTexts,
        (cal_type, level, expires_at): (Option<CalType>, Option<ProductVersion>, Timestamp),
    ) {
        // The stretch it was active in goes on when it is renewed before it lapsed
        // at the same level; otherwise it ends and a new one starts here.
        if let (Some((start, open_level)), Some(until)) =
            (self.cals[index].open_interval, self.cals[index].active_until)
            && (at >= until || Some(open_level) != level)
        {
            self.close_interval(index, start, open_level, until.min(at));
            self.cals[index].open_interval = None;
        }
        let cal = &mut self.cals[index];
        cal.server = texts.server;
        cal.n_issues += 1;
        cal.renewed_at = Some(at);
        cal.expires_at = Some(expires_at);
        cal.expires_at_given = e.expires_at;
        cal.active_until = Some(active_until(cal_type, cal.issued_at, expires_at));
        cal.level = level;
        cal.temporary = e.temporary;
        cal.revoked_at = None;
        cal.cleared_at = None;
        if let Some(hardware_id) = e.hardware_id.as_deref()
            && cal.hardware_id.as_deref() != Some(hardware_id)
        {
            cal.hardware_id = Some(hardware_id.to_owned());
        }
        if texts.session_host.is_some() {
            cal.session_host = texts.session_host;
            cal.session_host_version = e.session_host_version;
        }
    }

    /// A holder's first CAL from a pack: a new `cals` row.
    fn first_issue(
        &mut self,
        at: Timestamp,
        e: &CalIssued,
        key: (Sym, Sym),
        texts: IssuedTexts,
        (cal_type, product_version): (Option<CalType>, Option<ProductVersion>),
        (level, expires_at): (Option<ProductVersion>, Timestamp),
    ) {
        self.cals.push(CalRow {
            server: texts.server,
            keypack: key.0,
            holder: texts.holder,
            cal_type,
            product_version,
            hardware_id: e.hardware_id.as_deref().map(str::to_owned),
            temporary: e.temporary,
            issued_at: at,
            renewed_at: None,
            n_issues: 1,
            expires_at: Some(expires_at),
            expires_at_given: e.expires_at,
            active_until: Some(active_until(cal_type, at, expires_at)),
            level,
            revoked_at: None,
            cleared_at: None,
            session_host: texts.session_host,
            session_host_version: e.session_host_version,
            active: false,
            open_interval: None,
        });
        self.holder_keys.push(key.1);
    }

    fn issued(&mut self, seq: u64, at: Timestamp, event: &Event, e: &CalIssued) {
        let (holder, key) = self.cal_key(e.keypack.as_str(), e.holder.as_str());
        let (cal_type, product_version) = self.pack_kind(key.0);
        let expires_at = e
            .expires_at
            .unwrap_or_else(|| add_days(at, licence::default_lifetime_days(cal_type, e.temporary)));
        let level = e.session_host_version.or(product_version).map(level_of);
        let next = self.cals.len();
        // The CAL's row if the holder had one from this pack, else a new one: the hint, or
        // else one lookup in the map.
        let (index, renewal) = if let Some(index) = self.hinted_cal(key) {
            (index, true)
        } else {
            let found = match self.cal_index.entry(key) {
                Entry::Occupied(found) => (*found.get(), true),
                Entry::Vacant(slot) => (*slot.insert(next), false),
            };
            self.hint_cal(key.1, found.0);
            found
        };
        // The server's row is made here for a server first named by this event, as `apply`
        // makes it for the others.
        let server_status = match self.servers.get(&e.server) {
            Some(row) => row.status,
            None => self.server(&e.server).status,
        };
        let session_host = e.session_host.as_deref().map(|h| self.strings.intern(h));
        let notable = server_status != ServerStatus::Activated
            || e.session_host_version.map(level_of) > product_version.map(level_of);
        let id = notable.then(|| self.strings.intern(event.id.as_str()));
        let server = self.strings.intern(e.server.as_str());
        let row = IssueRow {
            seq,
            id,
            at,
            server,
            keypack: key.0,
            holder,
            cal_type,
            product_version,
            temporary: e.temporary,
            renewal,
            session_host,
            session_host_version: e.session_host_version,
            server_status,
        };
        // Every handle the row holds is interned by now.
        self.issues.push(row, self.strings.texts.len());
        let texts = IssuedTexts { server, holder, session_host };
        if renewal {
            self.renew(index, at, e, texts, (cal_type, level, expires_at));
        } else {
            self.first_issue(at, e, key, texts, (cal_type, product_version), (level, expires_at));
        }
        if self.cals[index].open_interval.is_none()
            && let Some(level) = level
        {
            self.cals[index].open_interval = Some((at, level));
        }
    }

    /// A revocation: a per-device CAL ends; a per-user one is listed and not applied.
    fn revoked(&mut self, seq: u64, at: Timestamp, event: &Event, e: &CalRevoked) {
        let (_, key) = self.cal_key(e.keypack.as_str(), e.holder.as_str());
        let (cal_type, product_version) = self.pack_kind(key.0);
        // A per-user CAL cannot be revoked: the record is kept for `per_user_revoked`
        // and not applied, so the CAL stays active (EVENTS.md, `cal.revoked`).
        if cal_type != Some(CalType::PerUser)
            && let Some(index) = self.find_cal(key)
        {
            self.cut(index, at, false);
        }
        let installed_on_server = self
            .keypacks
            .iter()
            .filter(|p| {
                p.server == e.server
                    && p.cal_type == CalType::PerDevice
                    && Some(p.product_version) == product_version
            })
            .map(|p| p.current_quantity)
            .sum();
        self.revocations.push(RevocationRow {
            seq,
            id: event.id.as_str().to_owned(),
            at,
            server: e.server.clone(),
            keypack: e.keypack.as_str().to_owned(),
            holder: e.holder.as_str().to_owned(),
            cal_type,
            product_version,
            installed_on_server,
        });
    }

    /// A rebuilt database: the server's packs are lost and owed, its CALs cleared.
    fn rebuilt(&mut self, seq: u64, at: Timestamp, event: &Event, e: &ServerDatabaseRebuilt) {
        let packs = self.packs_of(&e.server);
        for index in packs {
            let current = self.keypacks[index].current_quantity;
            // A rebuild owes what the server held just before it.
            self.owe(index, current, at, event.id.as_str());
            self.set_quantity(seq, at, index, 0);
            self.keypacks[index].lost += current;
            self.keypacks[index].resurrected = 0;
        }
        self.clear_cals(&e.server, at, |_| true);
        self.server(&e.server).last_rebuilt_at = Some(at);
    }

    /// Judges what is active at `active_at` and derives the per-pack counts, the counts at or
    /// above each level, what servers are owed, and the true-up years.
    pub fn finish(mut self) -> Replay {
        if let (AsOf::Seq(_), Some(latest)) = (self.as_of, self.latest_at) {
            self.active_at = latest;
        }
        self.finished = true;
        let active_at = self.active_at;
        self.intervals.reserve(self.cals.iter().filter(|c| c.open_interval.is_some()).count());
        for index in 0..self.cals.len() {
            if let (Some((start, level)), Some(until)) =
                (self.cals[index].open_interval, self.cals[index].active_until)
            {
                self.close_interval(index, start, level, until);
                self.cals[index].open_interval = None;
            }
        }
        let mut active_per_pack: HashMap<Sym, u64> = HashMap::new();
        for cal in &mut self.cals {
            cal.active = cal.revoked_at.is_none()
                && cal.cleared_at.is_none()
                && cal.issued_at <= active_at
                && cal.active_until.is_some_and(|t| t > active_at);
            if cal.active {
                *active_per_pack.entry(cal.keypack).or_default() += 1;
            }
        }
        for pack in &mut self.keypacks {
            let sym = self.strings.find(pack.keypack.as_str());
            pack.active_issued =
                sym.and_then(|sym| active_per_pack.get(&sym)).copied().unwrap_or(0);
            pack.available = pack.current_quantity.saturating_sub(pack.active_issued);
        }
        for purchase in &mut self.purchases {
            purchase.ceiling = licence::ceiling(purchase, active_at, &self.made_available);
        }
        self.holders = holders_at(&self.intervals, active_at, &self.strings);
        self.in_use_steps = licence::in_use_steps(&self.intervals);
        self.rights_steps = licence::rights_steps(&self.purchases, active_at, &self.made_available);
        self.installed_steps = licence::installed_steps(
            self.quantity_changes
                .iter()
                .map(|c| (c.cal_type, c.entitlement_version, c.at, c.delta)),
        );
        self.estate_levels = licence::estate_levels(
            self.purchases.iter().map(|p| (p.cal_type, p.product_version)),
            self.keypacks.iter().map(|k| (k.cal_type, k.entitlement_version())),
            self.intervals.iter().map(|i| (i.cal_type, i.level)),
        )
        .into_iter()
        .collect();
        self.debts =
            std::mem::take(&mut self.debt_map).into_values().filter(|d| d.owed > 0).collect();
        self.true_up_years = true_up_years(&self.purchases, active_at);
        self
    }

    /// Ends a CAL's active stretch at `end`.
    fn close_interval(
        &mut self,
        index: usize,
        start: Timestamp,
        level: ProductVersion,
        end: Timestamp,
    ) {
        let cal = &self.cals[index];
        if let Some(cal_type) = cal.cal_type
            && start < end
        {
            self.intervals.push(UseInterval {
                cal_type,
                holder: self.holder_keys[index],
                level,
                temporary: cal.temporary,
                start,
                end,
            });
        }
    }

    /// A revocation or a clear at `at` ends the CAL's activity there.
    fn cut(&mut self, index: usize, at: Timestamp, cleared: bool) {
        if let Some((start, level)) = self.cals[index].open_interval {
            let until = self.cals[index].active_until.map_or(at, |t| t.min(at));
            self.close_interval(index, start, level, until);
            self.cals[index].open_interval = None;
        }
        let cal = &mut self.cals[index];
        if cleared {
            cal.cleared_at.get_or_insert(at);
        } else {
            cal.revoked_at = Some(at);
        }
    }

    /// Takes the server's CALs that `which` picks out of its database.
    fn clear_cals(&mut self, server: &ServerName, at: Timestamp, which: impl Fn(&CalRow) -> bool) {
        // A server no CAL names has no text here.
        let Some(server) = self.strings.find(server.as_str()) else { return };
        let chosen: Vec<usize> = (0..self.cals.len())
            .filter(|i| {
                let cal = &self.cals[*i];
                cal.server == server && cal.cleared_at.is_none() && which(cal)
            })
            .collect();
        for index in chosen {
            self.cut(index, at, true);
        }
    }

    /// Covers the not-yet-removed CALs of a pack's migrations with a removal from the pack:
    /// the named migration first, then the others oldest first.
    fn cover_migrations(
        &mut self,
        keypack: &str,
        named: Option<usize>,
        quantity: u64,
        at: Timestamp,
        id: &str,
    ) {
        let mut order: Vec<usize> = named.into_iter().collect();
        order.extend((0..self.migrations.len()).filter(|i| {
            let migration = &self.migrations[*i];
            migration.from_keypack == keypack && Some(*i) != named && migration.at <= at
        }));
        let mut left = quantity;
        for index in order {
            let migration = &mut self.migrations[index];
            let covered = left.min(migration.not_removed);
            if covered > 0 {
                migration.not_removed -= covered;
                migration.removed_by_hand += covered;
                migration.removed_at = Some(at);
                migration.removals.push(id.to_owned());
                left -= covered;
            }
        }
    }

    /// The key of what a pack's server is owed for the pack's agreement, requirement and type.
    fn debt_key(&self, index: usize) -> DebtKey {
        let pack = &self.keypacks[index];
        (
            pack.server.clone(),
            pack.incarnation,
            pack.agreement.clone(),
            pack.entitlement_version(),
            pack.cal_type,
        )
    }

    /// Adds to what the pack's server is owed for the pack's agreement, requirement and type.
    fn owe(&mut self, index: usize, quantity: u64, at: Timestamp, id: &str) {
        if quantity == 0 {
            return;
        }
        let key = self.debt_key(index);
        let debt = self.debt_map.entry(key.clone()).or_insert_with(|| DebtRow {
            server: key.0,
            incarnation: key.1,
            agreement: key.2,
            requirement: key.3,
            cal_type: key.4,
            owed: 0,
            since: at,
            events: Vec::new(),
        });
        if debt.owed == 0 {
            debt.since = at;
        }
        debt.owed += quantity;
        if debt.events.last().map(String::as_str) != Some(id) {
            debt.events.push(id.to_owned());
        }
    }

    /// Pays down what a server incarnation is owed for an agreement, requirement and type.
    fn pay_down(&mut self, key: &DebtKey, quantity: u64, id: &str) {
        if let Some(debt) = self.debt_map.get_mut(key)
            && debt.owed > 0
            && quantity > 0
        {
            debt.owed -= quantity.min(debt.owed);
            debt.events.push(id.to_owned());
        }
    }

    /// The holder's handle, and the key of a CAL in `cal_index`: its pack and its holder's
    /// name in lower case. Texts are interned in the order they always were (holder, pack,
    /// lower case), so the handles stay what they were.
    fn cal_key(&mut self, keypack: &str, holder_text: &str) -> (Sym, (Sym, Sym)) {
        let (holder, known_lower) = self.strings.intern_known_lower(holder_text);
        let keypack = self.strings.intern(keypack);
        let lower = match known_lower {
            Some(lower) => lower,
            None => self.strings.lower_of_text(holder, holder_text),
        };
        (holder, (keypack, lower))
    }

    /// The row of the CAL with this key (pack, lower-cased holder), if there is one.
    pub(crate) fn find_cal(&self, key: (Sym, Sym)) -> Option<usize> {
        self.hinted_cal(key).or_else(|| self.cal_index.get(&key).copied())
    }

    /// The row `latest_cal` hints at for the key's holder, if it is the CAL with this key:
    /// its pack and its holder are checked, so a hint never gives another CAL.
    fn hinted_cal(&self, (keypack, lower): (Sym, Sym)) -> Option<usize> {
        let row = (*self.latest_cal.get(lower.index())? as usize).checked_sub(1)?;
        let cal = self.cals.get(row)?;
        (cal.keypack == keypack && self.holder_keys.get(row) == Some(&lower)).then_some(row)
    }

    /// Makes `row` the hint for the holder `lower`; no hint for a row past `u32`'s range.
    fn hint_cal(&mut self, lower: Sym, row: usize) {
        let at = lower.index();
        if at >= self.latest_cal.len() {
            // Room for every handle given out so far, not one more each time.
            self.latest_cal.resize((at + 1).max(self.strings.texts.len()), 0);
        }
        self.latest_cal[at] = u32::try_from(row + 1).unwrap_or(0);
    }

    /// The CAL type and version of a pack, unknown when the ledger has no such pack.
    fn pack_kind(&self, keypack: Sym) -> (Option<CalType>, Option<ProductVersion>) {
        let kind = self.pack_kinds.get(&keypack);
        (kind.map(|p| p.cal_type), kind.map(|p| p.product_version))
    }

    /// The packs of the server's current incarnation.
    fn packs_of(&self, server: &ServerName) -> Vec<usize> {
        let incarnation = self.servers.get(server).map_or(1, |s| s.incarnation);
        (0..self.keypacks.len())
            .filter(|i| {
                self.keypacks[*i].server == *server && self.keypacks[*i].incarnation == incarnation
            })
            .collect()
    }

    /// The server is gone: its packs hold nothing, its CALs are cleared, and nothing its
    /// migrations moved is left on it (EVENTS.md, `server.decommissioned`).
    fn decommission(&mut self, seq: u64, at: Timestamp, server: &ServerName) {
        for index in self.packs_of(server) {
            let current = self.keypacks[index].current_quantity;
            self.set_quantity(seq, at, index, 0);
            let pack = &mut self.keypacks[index];
            pack.removed += current;
            pack.resurrected = 0;
        }
        self.clear_cals(server, at, |_| true);
        let incarnation = self.servers[server].incarnation;
        // Debts end with the incarnation.
        self.debt_map.retain(|key, _| !(key.0 == *server && key.1 == incarnation));
        for migration in self
            .migrations
            .iter_mut()
            .filter(|m| m.source == *server && m.source_incarnation == incarnation)
        {
            migration.not_removed = 0;
        }
        let row = self.server(server);
        row.status = ServerStatus::Decommissioned;
        row.decommissioned_at = Some(at);
        self.status_changed(seq, at, server);
    }

    fn server(&mut self, server: &ServerName) -> &mut ServerRow {
        // Looked up first: `entry` would clone the name for every event of a known server.
        if self.servers.contains_key(server) {
            return self.servers.get_mut(server).expect("invariant: just found");
        }
        self.servers.entry(server.clone()).or_insert_with(|| ServerRow {
            server: server.clone(),
            incarnation: 1,
            status: ServerStatus::NeverActivated,
            license_server_id: None,
            os_version: None,
            activated_at: None,
            opening: false,
            deactivated_at: None,
            decommissioned_at: None,
            reactivated_at: None,
            last_restored_at: None,
            last_backup_taken_at: None,
            last_rebuilt_at: None,
        })
    }

    fn status_changed(&mut self, seq: u64, at: Timestamp, server: &ServerName) {
        let row = &self.servers[server];
        self.status_changes.push(StatusChangeRow {
            seq,
            at,
            server: server.clone(),
            incarnation: row.incarnation,
            status: row.status,
            license_server_id: row.license_server_id.clone(),
            os_version: row.os_version,
        });
    }

    fn install(&mut self, seq: u64, event: &Event, e: &KeypackInstalled) {
        let id = event.id.as_str();
        let quantity = u64::from(e.quantity.get());
        let incarnation = self.servers[&e.server].incarnation;
        // A re-install from the Clearinghouse pays down what a rebuild or a restore left owed.
        let key = (
            e.server.clone(),
            incarnation,
            e.agreement.as_str().to_owned(),
            e.downgraded_from.unwrap_or(e.product_version),
            e.cal_type,
        );
        self.pay_down(&key, quantity, id);
        let kind = PackKind::installed(e);
        let mut pack =
            new_pack(kind, e.keypack.as_str(), &e.server, incarnation, seq, event, quantity);
        pack.wmi_keypack_id = e.wmi_keypack_id;
        self.add_pack(seq, pack);
    }

    fn add_pack(&mut self, seq: u64, pack: KeypackRow) {
        let index = self.keypacks.len();
        self.quantity_changes.push(QuantityChangeRow {
            seq,
            at: pack.installed_at,
            keypack: pack.keypack.clone(),
            server: pack.server.clone(),
            agreement: pack.agreement.clone(),
            entitlement_version: pack.entitlement_version(),
            cal_type: pack.cal_type,
            delta: pack.current_quantity as i64,
        });
        self.timelines.push(vec![(pack.installed_at, pack.current_quantity)]);
        self.left.push(Vec::new());
        self.keypack_index.insert(pack.keypack.clone(), index);
        let sym = self.strings.intern(&pack.keypack);
        // A pack applied without `know` having seen it (callers that fold events directly).
        self.pack_kinds.entry(sym).or_insert_with(|| PackKind {
            agreement: pack.agreement.clone(),
            product_version: pack.product_version,
            cal_type: pack.cal_type,
            downgraded_from: pack.downgraded_from,
        });
        self.keypacks.push(pack);
    }

    /// Takes up to `wanted` CALs out of a pack; a pack never goes below zero. Returns how many
    /// were taken.
    fn take_out(&mut self, seq: u64, at: Timestamp, index: usize, wanted: u64) -> u64 {
        let pack = &self.keypacks[index];
        let taken = wanted.min(pack.current_quantity);
        let after = pack.current_quantity - taken;
        self.set_quantity(seq, at, index, after);
        let pack = &mut self.keypacks[index];
        pack.removed += taken;
        pack.resurrected = pack.resurrected.saturating_sub(taken);
        if taken > 0 {
            self.left[index].push((at, taken));
        }
        taken
    }

    fn set_quantity(&mut self, seq: u64, at: Timestamp, index: usize, after: u64) {
        let pack = &mut self.keypacks[index];
        let delta = after as i64 - pack.current_quantity as i64;
        pack.current_quantity = after;
        self.timelines[index].push((at, after));
        if delta != 0 {
            self.quantity_changes.push(QuantityChangeRow {
                seq,
                at,
                keypack: pack.keypack.clone(),
                server: pack.server.clone(),
                agreement: pack.agreement.clone(),
                entitlement_version: pack.entitlement_version(),
                cal_type: pack.cal_type,
                delta,
            });
        }
    }

    /// The server holds again what it held at the backup (DOMAIN.md, "Backup/restore"); on
    /// another machine or a reinstalled OS only the issued CALs of those packs come back. What
    /// comes back that had left by a migration or a removal since the backup is resurrected;
    /// what it holds less than before is owed, and what else comes back pays debts down.
    fn restore(&mut self, seq: u64, id: &str, at: Timestamp, e: &caltrail_events::ServerRestored) {
        let backup = e.backup_taken_at;
        let keeps_unissued = e.same_machine && !e.os_replaced;
        // Per agreement, requirement and type: held before, held after, resurrected, a pack.
        let mut groups: BTreeMap<DebtKey, (u64, u64, u64, usize)> = BTreeMap::new();
        for index in self.packs_of(&e.server) {
            let quantity_at_backup = self.timelines[index]
                .iter()
                .rev()
                .find(|(t, _)| *t <= backup)
                .map_or(0, |(_, q)| *q);
            let quantity_before = self.keypacks[index].current_quantity;
            if quantity_at_backup == 0 && quantity_before == 0 {
                continue;
            }
            // A pack no CAL names has no text here.
            let keypack_sym = self.strings.find(&self.keypacks[index].keypack);
            // The backup holds the CALs its database recorded as issued: an expiry an event
            // gave is a record, while the default lifetimes only bound how long use is
            // counted, so they do not take a CAL out of the backup.
            let issued_at_backup = (self
                .cals
                .iter()
                .filter(|c| {
                    Some(c.keypack) == keypack_sym
                        && c.issued_at <= backup
                        && c.revoked_at.is_none_or(|t| t > backup)
                        && c.cleared_at.is_none_or(|t| t > backup)
                        && c.expires_at_given.is_none_or(|t| t > backup)
                })
                .count() as u64)
                .min(quantity_at_backup);
            let quantity_after = if keeps_unissued { quantity_at_backup } else { issued_at_backup };
            let unissued_lost = quantity_at_backup - quantity_after;
            let came_back = quantity_after.saturating_sub(quantity_before);
            let left_since_backup: u64 = self.left[index]
                .iter()
                .filter(|(t, _)| *t > backup && *t <= at)
                .map(|(_, q)| *q)
                .sum();
            let resurrected = came_back.min(left_since_backup);
            self.set_quantity(seq, at, index, quantity_after);
            let key = self.debt_key(index);
            let pack = &mut self.keypacks[index];
            if quantity_after >= quantity_before {
                pack.restored += came_back;
            } else {
                pack.lost += quantity_before - quantity_after;
            }
            pack.resurrected = resurrected;
            pack.resurrected_by = (resurrected > 0).then(|| id.to_owned());
            let group = groups.entry(key).or_insert((0, 0, 0, index));
            group.0 += quantity_before;
            group.1 += quantity_after;
            group.2 += resurrected;
            self.restores.push(RestoreRow {
                seq,
                id: id.to_owned(),
                at,
                server: e.server.clone(),
                backup_taken_at: backup,
                same_machine: e.same_machine,
                os_replaced: e.os_replaced,
                keypack: pack.keypack.clone(),
                agreement: pack.agreement.clone(),
                product_version: pack.product_version,
                cal_type: pack.cal_type,
                entitlement_version: pack.entitlement_version(),
                quantity_at_backup,
                issued_at_backup,
                quantity_before,
                quantity_after,
                came_back,
                unissued_lost,
                resurrected,
            });
        }
        for (key, (before, after, resurrected, index)) in groups {
            if before > after {
                self.owe(index, before - after, at, id);
            } else {
                // CALs lost to a rebuild or an earlier restore that come back are a recovery.
                self.pay_down(&key, (after - before).saturating_sub(resurrected), id);
            }
        }
        // CALs issued after the backup are not in the restored database.
        self.clear_cals(&e.server, at, |c| c.issued_at > backup);
        let row = self.server(&e.server);
        row.last_restored_at = Some(at);
        row.last_backup_taken_at = Some(backup);
    }
}

/// The handles of a `cal.issued` event's texts that its CAL row keeps.
#[derive(Clone, Copy)]
struct IssuedTexts {
    server: Sym,
    holder: Sym,
    session_host: Option<Sym>,
}

/// When a CAL stops being active if nothing cuts it short: its expiry, and for a per-user CAL
/// at least 90 days after its first issue (a licence cannot be reassigned sooner).
fn active_until(
    cal_type: Option<CalType>,
    first_issued_at: Timestamp,
    expires_at: Timestamp,
) -> Timestamp {
    match cal_type {
        Some(CalType::PerUser) => {
            expires_at.max(add_days(first_issued_at, licence::PER_USER_MINIMUM_DAYS))
        }
        _ => expires_at,
    }
}

/// The holders in use at `at`: once per CAL type, at the newest level among their active CALs.
fn holders_at(intervals: &[UseInterval], at: Timestamp, strings: &Strings) -> Vec<HolderRow> {
    let mut holders: BTreeMap<(CalType, &str), HolderRow> = BTreeMap::new();
    for interval in intervals.iter().filter(|i| i.start <= at && at < i.end) {
        let name = strings.get(interval.holder);
        let row = holders.entry((interval.cal_type, name)).or_insert_with(|| HolderRow {
            cal_type: interval.cal_type,
            holder: name.to_owned(),
            level: interval.level,
            temporary: true,
            n_cals: 0,
        });
        row.level = row.level.max(interval.level);
        row.temporary &= interval.temporary;
        row.n_cals += 1;
    }
    holders.into_values().collect()
}

/// The `events` table's row of one entry.
pub fn event_row(seq: u64, recorded_at: Timestamp, hash: &str, event: &Event) -> EventRow {
    let mut data = Vec::new();
    let fields = event_fields(seq, recorded_at, hash, event, &mut data);
    EventRow {
        seq,
        id: fields.id.to_owned(),
        event_type: fields.event_type,
        at: fields.at,
        recorded_at,
        actor: fields.actor.map(str::to_owned),
        note: fields.note.map(str::to_owned),
        server: fields.server.map(str::to_owned),
        target_server: fields.target_server.map(str::to_owned),
        data: fields.data.to_owned(),
        hash: hash.to_owned(),
        retracted_by: None,
    }
}

/// The `events` table's row of one entry, borrowed from it; the `data` JSON text is written
/// into `data` (cleared first), which an export reuses from one entry to the next.
pub fn event_fields<'a>(
    seq: u64,
    recorded_at: Timestamp,
    hash: &'a str,
    event: &'a Event,
    data: &'a mut Vec<u8>,
) -> EventFields<'a> {
    let (server, target_server) = match &event.data {
        EventData::CalsMigrated(e) => (Some(e.source.as_str()), Some(e.target.as_str())),
        _ => (event.servers().next().map(ServerName::as_str), None),
    };
    data.clear();
    event.data.write_json(data);
    EventFields {
        seq,
        id: event.id.as_str(),
        event_type: event.event_type().as_str(),
        at: event.at,
        recorded_at,
        actor: event.actor.as_deref(),
        note: event.note.as_deref(),
        server,
        target_server,
        data: std::str::from_utf8(data).expect("invariant: JSON written from text is UTF-8"),
        hash,
        retracted_by: None,
    }
}

/// A pack as it is created by entry `seq`: `quantity` CALs installed, nothing removed,
/// restored or lost yet.
fn new_pack(
    kind: PackKind,
    keypack: &str,
    server: &ServerName,
    incarnation: u32,
    seq: u64,
    event: &Event,
    quantity: u64,
) -> KeypackRow {
    KeypackRow {
        keypack: keypack.to_owned(),
        server: server.clone(),
        incarnation,
        agreement: kind.agreement,
        product_version: kind.product_version,
        cal_type: kind.cal_type,
        downgraded_from: kind.downgraded_from,
        wmi_keypack_id: None,
        origin: Origin::Installed,
        migration: None,
        from_keypack: None,
        installed_seq: seq,
        installed_id: event.id.as_str().to_owned(),
        installed_at: event.at,
        installed: quantity,
        removed: 0,
        restored: 0,
        lost: 0,
        current_quantity: quantity,
        resurrected: 0,
        resurrected_by: None,
        active_issued: 0,
        available: 0,
    }
}

/// What a migrated pack is: its source pack's kind, else what the migration event says (all
/// three of agreement, version and type), else unknown.
fn migrated_kind(source: Option<&PackKind>, e: &caltrail_events::CalsMigrated) -> Option<PackKind> {
    if let Some(source) = source {
        return Some(source.clone());
    }
    Some(PackKind {
        agreement: e.agreement.as_ref()?.as_str().to_owned(),
        product_version: e.product_version?,
        cal_type: e.cal_type?,
        downgraded_from: None,
    })
}

/// The anniversary date in a year; 29 February falls on the 28th in other years.
fn anniversary_in(year: i32, month: u32, day: u32) -> Option<Timestamp> {
    let date = NaiveDate::from_ymd_opt(year, month, day)
        .or_else(|| NaiveDate::from_ymd_opt(year, month, day - 1))?;
    let midnight = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?);
    Timestamp::from_micros(midnight.timestamp_micros())
}

/// The true-up years of every agreement (RULES.md, "Reports", `true_up`): from its
/// anniversary (the latest one its purchases give, else its first purchase's month and day),
/// the first year holding its first purchase, the last ending at `until`. The default
/// agreement is the enterprise, campus or school agreement with the latest purchase.
fn true_up_years(purchases: &[PurchaseRow], until: Timestamp) -> Vec<TrueUpYearRow> {
    let mut by_agreement: BTreeMap<&str, Vec<&PurchaseRow>> = BTreeMap::new();
    for purchase in purchases {
        by_agreement.entry(purchase.agreement.as_str()).or_default().push(purchase);
    }
    let default = purchases
        .iter()
        .filter(|p| {
            matches!(p.program, "enterprise_agreement" | "campus_agreement" | "school_agreement")
        })
        .max_by_key(|p| (p.at, p.seq))
        .map(|p| p.agreement.as_str());
    let mut years = Vec::new();
    for (agreement, mut bought) in by_agreement {
        bought.sort_by_key(|p| (p.at, p.seq));
        let first = bought[0].at;
        let (month, day) = match bought.iter().rev().find_map(|p| p.anniversary) {
            Some(a) => (a.month(), a.day()),
            None => (first.datetime().month(), first.datetime().day()),
        };
        let mut year = first.datetime().year();
        if anniversary_in(year, month, day).is_some_and(|start| start > first) {
            year -= 1;
        }
        // A ledger spans years, not centuries: the bound keeps a bad clock from looping long.
        for _ in 0..200 {
            let (Some(start), Some(end)) =
                (anniversary_in(year, month, day), anniversary_in(year + 1, month, day))
            else {
                break;
            };
            if start > until {
                break;
            }
            years.push(TrueUpYearRow {
                agreement: agreement.to_owned(),
                anniversary: format!("{month:02}-{day:02}"),
                period_start: start,
                period_end: end.min(until),
                through_end: end >= until,
                default: Some(agreement) == default,
            });
            year += 1;
        }
    }
    years
}
