//! `wharf bench queue --secure`: what TLS and authentication cost in end-to-end throughput.
//!
//! The queue load runs against three servers the benchmark starts fresh each time: plain (HTTP,
//! open), bearer (HTTPS, `Authorization: Bearer` with the administrator token on every request)
//! and Basic (HTTPS, a user's password on every request). A round is one run of each; the
//! round's cost is `1 - secure / plain` end-to-end msg/s. Runs seconds apart on a shared
//! 2-core machine differ by more than the effect measured, so `--rounds` repeats the three,
//! every other round in reverse order (plain first, then plain last), and the verdict is the
//! median of the rounds' costs against [`BUDGET_PERCENT`].

use super::{
    http1::Endpoint,
    queue::{run_reported, shown, with_server_log, Headline, QueueArgs},
    secure::Credentials,
    server_process::ServerProcess,
    BenchError, Remote,
};
use serde_json::json;

/// The security issue's budget: TLS and authentication together may cost at most this share
/// of the plain run's end-to-end throughput.
const BUDGET_PERCENT: f64 = 15.0;

/// How the server of one run is set up.
#[derive(Debug, Clone, Copy)]
enum Setup {
    Plain,
    Bearer,
    Basic,
}

impl Setup {
    fn title(self) -> &'static str {
        match self {
            Setup::Plain => "plain (HTTP, no authentication)",
            Setup::Bearer => "secure (HTTPS, Authorization: Bearer TOKEN on every request)",
            Setup::Basic => "secure (HTTPS, Authorization: Basic for a user on every request)",
        }
    }
}

/// One run of each setup.
struct Round {
    plain: Headline,
    bearer: Headline,
    basic: Headline,
}

impl Round {
    fn bearer_cost(&self) -> f64 {
        cost_percent(&self.plain, &self.bearer)
    }

    fn basic_cost(&self) -> f64 {
        cost_percent(&self.plain, &self.basic)
    }
}

/// `server`: a server named with `--server`, which this benchmark refuses: it must start and
/// secure its own.
pub fn run(args: &QueueArgs, server: Option<&Remote<'_>>) -> Result<(), BenchError> {
    if server.is_some() {
        return Err(BenchError::Usage(
            "--secure starts its own plain and secure servers: drop --server and WHARF_SERVER"
                .into(),
        ));
    }
    if args.rounds == 0 {
        return Err(BenchError::Usage("--rounds must be positive".into()));
    }
    let credentials = Credentials::generate()?;
    let total_runs = 3 * args.rounds;
    let mut runs_started = 0;
    let mut run_one = |setup: Setup| {
        runs_started += 1;
        println!("run {runs_started} of {total_runs}: {}", setup.title());
        measure_setup(args, setup, &credentials)
    };
    let mut rounds = Vec::new();
    for index in 0..args.rounds {
        let round = if index % 2 == 0 {
            let plain = run_one(Setup::Plain)?;
            let bearer = run_one(Setup::Bearer)?;
            let basic = run_one(Setup::Basic)?;
            Round {
                plain,
                bearer,
                basic,
            }
        } else {
            let basic = run_one(Setup::Basic)?;
            let bearer = run_one(Setup::Bearer)?;
            let plain = run_one(Setup::Plain)?;
            Round {
                plain,
                bearer,
                basic,
            }
        };
        println!("round {} of {}:", index + 1, args.rounds);
        compare_line("bearer token", &round.plain, &round.bearer);
        compare_line("Basic user", &round.plain, &round.basic);
        rounds.push(round);
    }
    verdict(&rounds);
    Ok(())
}

/// Starts a fresh server set up as `setup`, runs the load against it and reports the run.
fn measure_setup(
    args: &QueueArgs,
    setup: Setup,
    credentials: &Credentials,
) -> Result<Headline, BenchError> {
    let (child, endpoint) = match setup {
        Setup::Plain => {
            let child = ServerProcess::start()?;
            let endpoint = Endpoint::new(child.address, None)?;
            (child, endpoint)
        }
        Setup::Bearer => {
            let child = ServerProcess::start_with(&credentials.server_options())?;
            let endpoint = credentials.admin_endpoint(child.address)?;
            (child, endpoint)
        }
        Setup::Basic => {
            let child = ServerProcess::start_with(&credentials.server_options())?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BenchError::Runtime)?;
            (runtime.block_on(credentials.create_user(child.address)))
                .map_err(|error| with_server_log(error, Some(&child)))?;
            let endpoint = credentials.user_endpoint(child.address)?;
            (child, endpoint)
        }
    };
    run_reported(args, child, &endpoint)
}

fn cost_percent(plain: &Headline, secure: &Headline) -> f64 {
    100.0 * (1.0 - secure.end_to_end_per_s / plain.end_to_end_per_s.max(f64::EPSILON))
}

/// Prints one secure run against the plain run of its round.
fn compare_line(name: &str, plain: &Headline, secure: &Headline) {
    println!(
        "{name} vs plain: end-to-end {:.0} vs {:.0} msg/s ({:.1}% cost); \
         server CPU s {} vs {}; bench CPU s {:.1} vs {:.1}; p99 ms {:.2} vs {:.2}",
        secure.end_to_end_per_s,
        plain.end_to_end_per_s,
        cost_percent(plain, secure),
        shown(secure.server_cpu_s),
        shown(plain.server_cpu_s),
        secure.bench_cpu_s,
        plain.bench_cpu_s,
        secure.p99_ms,
        plain.p99_ms
    );
}

/// The medians over the rounds, the verdict against the budget (judged on the bearer runs, the
/// issue's "authentication and TLS on"; Basic beside it), and the JSON summary line.
fn verdict(rounds: &[Round]) {
    let bearer_costs: Vec<f64> = rounds.iter().map(Round::bearer_cost).collect();
    let basic_costs: Vec<f64> = rounds.iter().map(Round::basic_cost).collect();
    let bearer_cost = median(&bearer_costs);
    let basic_cost = median(&basic_costs);
    let within = bearer_cost < BUDGET_PERCENT;
    let verdict = if within { "under" } else { "NOT under" };
    let listed = |costs: &[f64]| {
        let shown: Vec<String> = costs.iter().map(|cost| format!("{cost:.1}%")).collect();
        shown.join(", ")
    };
    println!(
        "security cost: {bearer_cost:.1}% of end-to-end throughput with TLS and a bearer token, \
         the median of {} round(s) ({}; {verdict} the {BUDGET_PERCENT}% budget); \
         {basic_cost:.1}% with Basic ({})",
        rounds.len(),
        listed(&bearer_costs),
        listed(&basic_costs),
    );
    let tenths = |percent: f64| (percent * 10.0).round() / 10.0;
    let median_of =
        |figure: fn(&Round) -> f64| median(&rounds.iter().map(figure).collect::<Vec<_>>());
    let median_cpu = |figure: fn(&Round) -> Option<f64>| {
        let figures: Option<Vec<f64>> = rounds.iter().map(figure).collect();
        figures.map(|figures| tenths(median(&figures)))
    };
    let summary = json!({
        "rounds": rounds.len(),
        "plain_end_to_end_per_s": median_of(|round| round.plain.end_to_end_per_s).round(),
        "secure_end_to_end_per_s": median_of(|round| round.bearer.end_to_end_per_s).round(),
        "basic_end_to_end_per_s": median_of(|round| round.basic.end_to_end_per_s).round(),
        "security_cost_percent": tenths(bearer_cost),
        "basic_security_cost_percent": tenths(basic_cost),
        "security_costs_percent": bearer_costs.iter().copied().map(tenths).collect::<Vec<_>>(),
        "basic_security_costs_percent": basic_costs.iter().copied().map(tenths).collect::<Vec<_>>(),
        "security_cost_budget_percent": BUDGET_PERCENT,
        "security_cost_within_budget": within,
        "plain_server_cpu_s": median_cpu(|round| round.plain.server_cpu_s),
        "secure_server_cpu_s": median_cpu(|round| round.bearer.server_cpu_s),
        "basic_server_cpu_s": median_cpu(|round| round.basic.server_cpu_s),
        "plain_bench_cpu_s": tenths(median_of(|round| round.plain.bench_cpu_s)),
        "secure_bench_cpu_s": tenths(median_of(|round| round.bearer.bench_cpu_s)),
        "basic_bench_cpu_s": tenths(median_of(|round| round.basic.bench_cpu_s)),
    });
    println!("{summary}");
}

/// The middle value, or the mean of the two middle ones; 0 for none.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => 0.0,
        length if length % 2 == 1 => sorted[middle],
        _ => (sorted[middle - 1] + sorted[middle]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0]), 3.0);
        assert_eq!(median(&[9.0, 1.0, 4.0]), 4.0);
        assert_eq!(median(&[9.0, 1.0, 4.0, 2.0]), 3.0);
        assert_eq!(median(&[-5.0, 20.0]), 7.5);
    }
}
