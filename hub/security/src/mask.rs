//! Masking personal data for logs and screens: enough left to recognise a record, not enough
//! to identify a person.

/// `310101199001011234` → `3101**********1234`: region prefix and last four kept.
pub fn id_number(s: &str) -> String {
    keep_ends(s, 4, 4)
}

/// `13800138000` → `138****8000`; landlines keep the area code and last four.
pub fn phone(s: &str) -> String {
    let digits = s.chars().count();
    if digits >= 11 {
        keep_ends(s, 3, 4)
    } else {
        keep_ends(s, 2, 2)
    }
}

/// `张三` → `张*`, `欧阳娜娜` → `欧***`: the first character only.
pub fn name(s: &str) -> String {
    keep_ends(s, 1, 0)
}

/// An address keeps its first six characters (district and street), the rest is hidden.
pub fn address(s: &str) -> String {
    keep_ends(s, 6, 0)
}

/// Free text from outside (a partner's answer message) before it is kept or shown: every run
/// of 7 or more digits (an ID-card number, possibly ending in X, a phone or account number) is
/// masked as [`id_number`] or [`phone`] would, and the text is cut to `max_chars`.
pub fn free_text(s: &str, max_chars: usize) -> String {
    let chars: Vec<char> = s.chars().take(max_chars).collect();
    let mut out = String::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i < chars.len() && matches!(chars[i], 'X' | 'x') && i - start == 17 {
                i += 1;
            }
            let run: String = chars[start..i].iter().collect();
            if run.chars().count() >= 7 {
                out.push_str(&if run.chars().count() >= 15 {
                    id_number(&run)
                } else {
                    phone(&run)
                });
            } else {
                out.push_str(&run);
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    if s.chars().count() > max_chars {
        out.push('…');
    }
    out
}

/// Masks by the contract's personal-data kind (`id_number`, `phone`, `name`, `address`);
/// an unknown kind is masked whole.
pub fn by_kind(kind: &str, s: &str) -> String {
    match kind {
        "id_number" => id_number(s),
        "phone" => phone(s),
        "name" => name(s),
        "address" => address(s),
        _ => "*".repeat(s.chars().count().max(1)),
    }
}

fn keep_ends(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n == 0 {
        return String::new();
    }
    // A value too short to keep both ends shows at most its first character.
    if n <= head + tail {
        let shown = if n > 1 { 1 } else { 0 };
        return chars[..shown].iter().collect::<String>() + &"*".repeat(n - shown);
    }
    let mut out: String = chars[..head].iter().collect();
    out.push_str(&"*".repeat(n - head - tail));
    out.extend(&chars[n - tail..]);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_text_hides_numbers_that_identify_people() {
        let t = free_text(
            "工单 G2026 已签收，来电人 13800138000，身份证 31010119900101123X。",
            200,
        );
        assert!(
            !t.contains("13800138000") && !t.contains("31010119900101123X"),
            "{t}"
        );
        assert!(t.contains("138****8000") && t.contains("G2026"), "{t}");
        assert_eq!(free_text("abcdef", 3), "abc…");
    }

    use super::*;

    #[test]
    fn masks_keep_only_what_identifies_the_record() {
        assert_eq!(id_number("310101199001011234"), "3101**********1234");
        assert_eq!(phone("13800138000"), "138****8000");
        assert_eq!(phone("021-64000000"), "021*****0000");
        assert_eq!(phone("64000000"), "64****00");
        assert_eq!(name("张三"), "张*");
        assert_eq!(name("欧阳娜娜"), "欧***");
        assert_eq!(address("浦东新区张江路100号"), "浦东新区张江*****");
        assert_eq!(by_kind("phone", "13800138000"), "138****8000");
        assert_eq!(by_kind("secret", "abc"), "***");
        assert_eq!(id_number("123"), "1**");
        assert_eq!(name("王"), "*");
        assert_eq!(phone(""), "");
    }
}
