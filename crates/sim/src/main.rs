//! `wharf-sim`: runs random seeds until a count or a time is reached, and prints the seed of
//! every failure with the command that reproduces it.
//!
//! ```text
//! wharf-sim [--seeds N] [--seconds T] [OPTIONS]           random seeds (100 unless told)
//! wharf-sim --seed S [--trace] [--log] [OPTIONS]          one seed again, exactly
//! OPTIONS: [--storage memory|files] [--steps S] [--jobs J] [--strict] [--provoke]
//! ```
//!
//! `--storage` picks what the engine runs over: `memory` (the default) or `files` (the file
//! store in a temporary directory, with file faults); a seed reproduces over the storage it
//! failed on. `--trace` prints every operation of the run, `--log` the engine's warnings.
//! Known engine defects (`wharf_sim::Defect`) are summed up at the end rather than failed on;
//! `--strict` fails on them, `--provoke` also injects the faults behind those files runs
//! otherwise avoid.

use std::{
    collections::BTreeMap,
    hash::{BuildHasher, Hasher},
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

/// Steps per seed unless told: long enough for several crashes, faults and restarts per run.
const STEPS_DEFAULT: usize = 1_000;

struct Args {
    storage: wharf_sim::Backend,
    seeds: Option<u64>,
    seconds: Option<u64>,
    steps: usize,
    seed: Option<u64>,
    jobs: usize,
    trace: bool,
    strict: bool,
    provoke: bool,
    log: bool,
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            eprintln!("usage: wharf-sim [--seeds N] [--seconds T] [OPTIONS]");
            eprintln!("       wharf-sim --seed S [--trace] [--log] [OPTIONS]");
            eprintln!(
                "OPTIONS: [--storage memory|files] [--steps S] [--jobs J] [--strict] [--provoke]"
            );
            return ExitCode::from(2);
        }
    };
    if args.log {
        // The engine's own warnings (a failed timer settlement, a failed reclaim) on stderr.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(std::io::stderr)
            .init();
    }
    match args.seed {
        Some(seed) => run_one(seed, &args),
        None => run_many(&args),
    }
}

fn run(seed: u64, args: &Args) -> Result<wharf_sim::Report, wharf_sim::Failure> {
    let options = wharf_sim::Options {
        storage: args.storage,
        strict: args.strict,
        provoke: args.provoke,
        digest: false,
    };
    wharf_sim::run_with(seed, args.steps, options)
}

fn run_one(seed: u64, args: &Args) -> ExitCode {
    let steps = args.steps;
    match run(seed, args) {
        Ok(report) => {
            if args.trace {
                report.trace.iter().for_each(|line| println!("{line}"));
            }
            println!(
                "seed {seed} over {} storage: ok, {steps} steps, {} crashes ({} inside \
                 operations), {} restarts, {} faults, {} messages, {} deliveries, {} drained at \
                 the end",
                report.storage,
                report.crashes,
                report.crashes_inside_operations,
                report.restarts,
                report.faults,
                report.messages,
                report.deliveries,
                report.drained
            );
            for (defect, sighting) in &report.defects {
                println!(
                    "known defect at step {}: {defect}\n  {}",
                    sighting.step, sighting.detail
                );
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            if args.trace {
                failure.trace.iter().for_each(|line| println!("{line}"));
            }
            println!("{failure}");
            for (defect, sighting) in &failure.defects {
                println!(
                    "known defect seen before, at step {}: {defect}",
                    sighting.step
                );
            }
            ExitCode::FAILURE
        }
    }
}

fn run_many(args: &Args) -> ExitCode {
    let started = Instant::now();
    let deadline = args.seconds.map(|s| started + Duration::from_secs(s));
    let base = random_seed();
    let next = AtomicU64::new(0);
    let (seeds_done, failures) = (AtomicUsize::new(0), Mutex::new(Vec::new()));
    let tally = Mutex::new(Tally::default());
    let defects = Mutex::new(BTreeMap::<wharf_sim::Defect, (usize, u64)>::new());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
                if args.seeds.is_some_and(|n| index >= n) || out_of_time {
                    return;
                }
                let seed = base.wrapping_add(index);
                match run(seed, args) {
                    Ok(report) => {
                        tally.lock().expect("tally lock").add(&report);
                        let mut defects = defects.lock().expect("defects lock");
                        for defect in report.defects.keys() {
                            defects.entry(*defect).or_insert((0, seed)).0 += 1;
                        }
                    }
                    Err(failure) => {
                        println!("{failure}\n");
                        failures.lock().expect("failures lock").push(seed);
                    }
                }
                seeds_done.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let failures = failures.into_inner().expect("failures lock");
    let seeds = seeds_done.into_inner();
    let tally = tally.into_inner().expect("tally lock");
    println!(
        "seeds {seeds} over {} storage, steps {}, failures {} in {:.1} s; in the seeds that \
         passed: {} crashes ({} inside operations), {} restarts, {} faults, {} deliveries",
        args.storage,
        seeds * args.steps,
        failures.len(),
        started.elapsed().as_secs_f64(),
        tally.crashes,
        tally.crashes_inside_operations,
        tally.restarts,
        tally.faults,
        tally.deliveries,
    );
    for seed in &failures {
        println!("failed: seed {seed} (the report above says how to reproduce it)");
    }
    for (defect, (count, seed)) in defects.into_inner().expect("defects lock") {
        println!(
            "known defect in {count} seeds (first: --seed {seed} --steps {} --storage {}): \
             {defect}",
            args.steps, args.storage
        );
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn parse(mut words: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        storage: wharf_sim::Backend::default(),
        seeds: None,
        seconds: None,
        steps: STEPS_DEFAULT,
        seed: None,
        jobs: 1,
        trace: false,
        strict: false,
        provoke: false,
        log: false,
    };
    while let Some(word) = words.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let text = words.next().ok_or(format!("{name} needs a value"))?;
            text.parse()
                .map_err(|_| format!("{name}: {text:?} is not a number"))
        };
        match word.as_str() {
            "--storage" => {
                let text = words.next().ok_or("--storage needs a value")?;
                args.storage = text.parse()?;
            }
            "--seeds" => args.seeds = Some(value("--seeds")?),
            "--seconds" => args.seconds = Some(value("--seconds")?),
            "--steps" => args.steps = value("--steps")? as usize,
            "--seed" => args.seed = Some(value("--seed")?),
            "--jobs" => args.jobs = value("--jobs")?.max(1) as usize,
            "--trace" => args.trace = true,
            "--strict" => args.strict = true,
            "--provoke" => args.provoke = true,
            "--log" => args.log = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.seeds.is_none() && args.seconds.is_none() {
        args.seeds = Some(100);
    }
    Ok(args)
}

/// What the seeds of a random run that passed did, summed.
#[derive(Debug, Default)]
struct Tally {
    crashes: u64,
    crashes_inside_operations: u64,
    restarts: u64,
    faults: u64,
    deliveries: u64,
}

impl Tally {
    fn add(&mut self, report: &wharf_sim::Report) {
        self.crashes += report.crashes;
        self.crashes_inside_operations += report.crashes_inside_operations;
        self.restarts += report.restarts;
        self.faults += report.faults;
        self.deliveries += report.deliveries;
    }
}

/// A fresh base seed per invocation, from the standard library's random hasher keys.
fn random_seed() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}
