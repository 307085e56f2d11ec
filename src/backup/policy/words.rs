//! A five-field cron period in plain words: "At 02:00", "Every 15 minutes, between 09:00 and
//! 17:59", "At 00:00, on Monday to Friday". Patterns it does not know how to say (`L`, `W`,
//! `#`) are said by croner, without its closing full stop (the pages add their own).

/// One field of a cron period.
#[derive(Debug, PartialEq)]
enum Part {
    /// `*` (or a step of 1).
    Any,
    /// `*/n`, `a/n`, `a-b/n`.
    Every {
        step: u32,
        from: u32,
        to: Option<u32>,
    },
    /// Values and ranges, each as (first, last).
    List(Vec<(u32, u32)>),
}

impl Part {
    /// The one value this field holds, if it holds exactly one.
    fn single(&self) -> Option<u32> {
        match self {
            Part::List(items) if items.len() == 1 && items[0].0 == items[0].1 => Some(items[0].0),
            _ => None,
        }
    }

    /// Every value, when the field is a list of single values.
    fn singles(&self) -> Option<Vec<u32>> {
        match self {
            Part::List(items) if items.iter().all(|(a, b)| a == b) => {
                Some(items.iter().map(|(a, _)| *a).collect())
            }
            _ => None,
        }
    }
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A value of a field: a number, or a day's or month's three-letter name.
fn value(text: &str, names: &[&str], first: u32) -> Option<u32> {
    if let Ok(number) = text.parse() {
        return Some(number);
    }
    names
        .iter()
        .position(|name| name[..3].eq_ignore_ascii_case(text))
        .map(|index| index as u32 + first)
}

fn part(text: &str, names: &[&str], first: u32) -> Option<Part> {
    let (range, step) = match text.split_once('/') {
        Some((range, step)) => (range, Some(step.parse::<u32>().ok()?)),
        None => (text, None),
    };
    let bounds = |range: &str| -> Option<(u32, u32)> {
        match range.split_once('-') {
            Some((a, b)) => Some((value(a, names, first)?, value(b, names, first)?)),
            None => value(range, names, first).map(|a| (a, a)),
        }
    };
    match step {
        Some(1) | None if range == "*" => Some(Part::Any),
        Some(step) if range == "*" => Some(Part::Every {
            step,
            from: 0,
            to: None,
        }),
        Some(step) => {
            let (from, to) = bounds(range)?;
            Some(Part::Every {
                step,
                from,
                to: (to != from).then_some(to),
            })
        }
        None => range
            .split(',')
            .map(bounds)
            .collect::<Option<_>>()
            .map(Part::List),
    }
}

/// "a", "a and b", "a, b and c".
fn joined(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn clock(hour: u32, minute: u32) -> String {
    format!("{hour:02}:{minute:02}")
}

/// The hours a minute pattern runs in: "" (every hour), ", between 09:00 and 17:59", …
fn during(hours: &Part) -> Option<String> {
    Some(match hours {
        Part::Any => String::new(),
        // Not "Every 15 minutes, every 2 hours": the minutes run inside the hours of the step.
        Part::Every {
            step,
            from: 0,
            to: None,
        } if *step > 0 => {
            let hours: Vec<String> = (0..24)
                .step_by(*step as usize)
                .map(|hour| format!("{hour:02}"))
                .collect();
            format!(", in the hours {}", joined(&hours))
        }
        Part::Every { .. } => return None,
        Part::List(items) => {
            let spans: Vec<String> = items
                .iter()
                .map(|(a, b)| format!("between {} and {}", clock(*a, 0), clock(*b, 59)))
                .collect();
            format!(", {}", joined(&spans))
        }
    })
}

/// The time of day part.
fn times(minutes: &Part, hours: &Part) -> Option<String> {
    if let Some(minute) = minutes.single() {
        return match hours {
            Part::Any if minute == 0 => Some("Every hour, on the hour".into()),
            Part::Any => Some(format!("Every hour at {minute} minutes past")),
            Part::Every {
                step,
                from: 0,
                to: None,
            } => Some(if minute == 0 {
                format!("Every {step} hours, on the hour")
            } else {
                format!("Every {step} hours at {minute} minutes past")
            }),
            Part::Every { .. } => None,
            Part::List(items) => match hours.singles() {
                Some(singles) if singles.len() <= 6 => {
                    let at: Vec<String> = singles.iter().map(|h| clock(*h, minute)).collect();
                    Some(format!("At {}", joined(&at)))
                }
                _ if items.len() == 1 => Some(format!(
                    "Every hour from {} to {}",
                    clock(items[0].0, minute),
                    clock(items[0].1, minute)
                )),
                _ => None,
            },
        };
    }
    let each = match minutes {
        Part::Any => "Every minute".to_string(),
        Part::Every {
            step,
            from: 0,
            to: None,
        } => format!("Every {step} minutes"),
        Part::List(_) => {
            let singles = minutes.singles()?;
            let at: Vec<String> = singles.iter().map(u32::to_string).collect();
            format!("At {} minutes past every hour", joined(&at))
        }
        Part::Every { .. } => return None,
    };
    Some(format!("{each}{}", during(hours)?))
}

/// Names of `items` ("Monday to Friday", "January and July").
fn named(items: &[(u32, u32)], names: &[&str], first: u32) -> Option<String> {
    let name = |n: u32| {
        names
            .get(n.checked_sub(first)? as usize % names.len())
            .copied()
    };
    let spans = items
        .iter()
        .map(|(a, b)| {
            Some(if a == b {
                name(*a)?.to_string()
            } else {
                format!("{} to {}", name(*a)?, name(*b)?)
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(joined(&spans))
}

/// The days part: "" (every day), ", on Monday to Friday", ", on day 1 of the month", …
fn days(day_of_month: &Part, month: &Part, day_of_week: &Part) -> Option<String> {
    let on_month_days = match day_of_month {
        Part::Any => None,
        Part::List(items) => {
            let spans: Vec<String> = items
                .iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a} to {b}")
                    }
                })
                .collect();
            let plural = items.len() > 1 || items[0].0 != items[0].1;
            Some(format!(
                "on day{} {} of the month",
                if plural { "s" } else { "" },
                joined(&spans)
            ))
        }
        Part::Every { .. } => return None,
    };
    let on_week_days = match day_of_week {
        Part::Any => None,
        Part::List(items) => Some(format!("on {}", named(items, &DAYS, 0)?)),
        Part::Every { .. } => return None,
    };
    let mut words = match (on_month_days, on_week_days) {
        (None, None) => String::new(),
        (Some(one), None) | (None, Some(one)) => format!(", {one}"),
        (Some(month_days), Some(week_days)) => format!(", {month_days} or {week_days}"),
    };
    match month {
        Part::Any => {}
        Part::List(items) => words.push_str(&format!(", in {}", named(items, &MONTHS, 1)?)),
        Part::Every { .. } => return None,
    }
    Some(words)
}

/// `pattern` (five fields, already checked) in words, or `None` when it is not one this
/// module knows how to say.
pub fn describe(pattern: &str) -> Option<String> {
    let fields: Vec<&str> = pattern.split(' ').collect();
    let [minute, hour, day_of_month, month, day_of_week] = fields.as_slice() else {
        return None;
    };
    let minutes = part(minute, &[], 0)?;
    let hours = part(hour, &[], 0)?;
    let day_of_month = part(day_of_month, &[], 1)?;
    let month = part(month, &MONTHS, 1)?;
    let day_of_week = part(day_of_week, &DAYS, 0)?;
    Some(format!(
        "{}{}",
        times(&minutes, &hours)?,
        days(&day_of_month, &month, &day_of_week)?
    ))
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn cron_periods_read_as_sentences() {
        for (pattern, words) in [
            ("0 2 * * *", "At 02:00"),
            ("30 2 * * *", "At 02:30"),
            ("0 0 * * *", "At 00:00"),
            (
                "*/15 9-17 * * *",
                "Every 15 minutes, between 09:00 and 17:59",
            ),
            ("*/15 * * * *", "Every 15 minutes"),
            ("* * * * *", "Every minute"),
            ("0 * * * *", "Every hour, on the hour"),
            ("5 * * * *", "Every hour at 5 minutes past"),
            ("0 */6 * * *", "Every 6 hours, on the hour"),
            ("0 2,14 * * *", "At 02:00 and 14:00"),
            ("0 9-17 * * *", "Every hour from 09:00 to 17:00"),
            ("0 0 * * 0", "At 00:00, on Sunday"),
            ("0 0 * * 7", "At 00:00, on Sunday"),
            ("30 1 * * 1-5", "At 01:30, on Monday to Friday"),
            ("0 3 * * MON,THU", "At 03:00, on Monday and Thursday"),
            ("0 0 1 * *", "At 00:00, on day 1 of the month"),
            ("0 4 1,15 * *", "At 04:00, on days 1 and 15 of the month"),
            (
                "0 4 1 1,7 *",
                "At 04:00, on day 1 of the month, in January and July",
            ),
            ("0,30 * * * *", "At 0 and 30 minutes past every hour"),
            // Minutes in the hours of a step (not "Every minute, every 6 hours", which reads
            // as once every six hours).
            (
                "* */6 * * *",
                "Every minute, in the hours 00, 06, 12 and 18",
            ),
            (
                "*/15 */8 * * *",
                "Every 15 minutes, in the hours 00, 08 and 16",
            ),
        ] {
            assert_eq!(describe(pattern).as_deref(), Some(words), "{pattern}");
        }
        for pattern in ["0 0 L * *", "0 0 * * 5#3"] {
            assert_eq!(describe(pattern), None, "{pattern}: croner says it");
        }
    }
}
