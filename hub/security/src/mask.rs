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
