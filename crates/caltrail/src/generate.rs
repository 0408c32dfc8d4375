//! `caltrail generate`: writes a realistic, deterministic licensing history as JSON Lines.

use std::io::Write;

use caltrail_generate::{Estate, PLANTED, generate};

use crate::Outcome;

/// Write a realistic licensing history (JSON Lines) for demonstrations and benchmarks.
///
/// An Enterprise Agreement estate with yearly true-up orders, per-device CALs renewed every 52
/// to 89 days, per-user CALs, revocations, migrations, a restore and a reactivation, plus small
/// servers that plant one finding of each rule (listed on stderr). Same sizes and seed, same
/// bytes.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail generate --events 1000000 > estate.jsonl\n  caltrail generate --servers 4 --devices 2000 --users 500 --years 2 --seed 7 | caltrail --db demo.db append"
)]
pub(crate) struct GenerateArgs {
    /// About this many events (sets the other sizes; three years).
    #[arg(long, conflicts_with_all = ["servers", "devices", "users", "years"])]
    events: Option<u64>,
    #[arg(long, default_value_t = 4)]
    servers: u32,
    #[arg(long, default_value_t = 1_000)]
    devices: u32,
    #[arg(long, default_value_t = 300)]
    users: u32,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    years: u32,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub(crate) fn run(args: &GenerateArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let estate = match args.events {
        Some(n) => Estate::for_events(n, args.seed),
        None => Estate {
            servers: args.servers,
            devices: args.devices,
            users: args.users,
            years: args.years,
            seed: args.seed,
        },
    };
    let mut failure = None;
    let n = generate(estate, &mut |line| {
        if failure.is_none()
            && let Err(e) = writeln!(out, "{line}")
        {
            failure = Some(e);
        }
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    let planted: Vec<String> = PLANTED.iter().map(|(rule, n)| format!("{rule} {n}")).collect();
    eprintln!("caltrail: generated {n} events; planted findings: {}", planted.join(", "));
    Ok(Outcome::Clean)
}
