//! The examples of one Markdown page: its ```console blocks, split into commands and outputs.

/// One ```console block.
#[derive(Debug)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The reason given by a `<!-- norun: REASON -->` line just above the fence.
    pub norun: Option<String>,
    pub steps: Vec<Step>,
}

/// One `$ ` command and the output shown below it.
#[derive(Debug)]
pub struct Step {
    /// 1-based line of the `$ `.
    pub line: usize,
    pub command: String,
    /// The shown output; `None` when no line follows the command.
    pub output: Option<String>,
}

/// Every ```console block of `text`, in page order.
pub fn blocks(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index].trim_end() != "```console" {
            index += 1;
            continue;
        }
        let start = index;
        let end = (start + 1..lines.len())
            .find(|&i| lines[i].trim_end() == "```")
            .unwrap_or(lines.len());
        let norun = start
            .checked_sub(1)
            .and_then(|above| lines[above].trim().strip_prefix("<!-- norun:"))
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(|reason| reason.trim().to_string());
        blocks.push(Block {
            line: start + 1,
            norun,
            steps: steps(&lines[start + 1..end], start + 2),
        });
        index = end + 1;
    }
    blocks
}

/// Splits a block's lines into steps. A command goes on over the lines right below its `$ `
/// line that are indented by four spaces; the output is the lines after it up to the next
/// `$ ` line.
fn steps(lines: &[&str], first_line: usize) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_command = false;
    for (offset, line) in lines.iter().enumerate() {
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: first_line + offset,
                command: command.to_string(),
                output: None,
            });
            in_command = true;
            continue;
        }
        let Some(step) = steps.last_mut() else {
            continue;
        };
        if in_command && line.starts_with("    ") {
            step.command.push('\n');
            step.command.push_str(line);
            continue;
        }
        in_command = false;
        let output = step.output.get_or_insert_with(String::new);
        output.push_str(line);
        output.push('\n');
    }
    steps
}

/// The 1-based lines of fences other than ```console whose block holds a `$ ` line: a shell
/// session shown where the test does not run it.
pub fn sessions_outside_console(text: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let mut open: Option<(usize, bool)> = None;
    let mut flagged = false;
    for (index, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match open {
            None if fence => {
                open = Some((index + 1, line.trim_end() == "```console"));
                flagged = false;
            }
            Some(_) if fence && line.trim() == "```" => open = None,
            Some((start, false)) if !flagged && line.starts_with("$ ") => {
                found.push(start);
                flagged = true;
            }
            _ => {}
        }
    }
    found
}

#[test]
fn blocks_split_into_commands_and_outputs() {
    let page = "text\n<!-- norun: why -->\n```console\n$ a\n```\n\n```console\n$ b \\\n    c\nout\n$ d\n```\n```sh\n$ e\n```\n";
    let found = blocks(page);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].norun.as_deref(), Some("why"));
    assert_eq!(found[1].line, 7);
    assert_eq!(found[1].steps[0].command, "b \\\n    c");
    assert_eq!(found[1].steps[0].output.as_deref(), Some("out\n"));
    assert_eq!(found[1].steps[1].output, None);
    assert_eq!(sessions_outside_console(page), vec![13]);
}
