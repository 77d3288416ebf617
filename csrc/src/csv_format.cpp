#include "csv_format.hpp"

#include <charconv>
#include <cmath>
#include <cstring>
#include <system_error>

namespace trackcore {

// Python's float repr (Python/pystrtod.c, format code 'r' with Py_DTSF_ADD_DOT_0): the shortest
// round-trip digits d1 d2 ... dn with the decimal point after decpt of them; exponent notation when
// decpt <= -4 or decpt > 16 ("d1.d2...dne+XX", at least two exponent digits, no ".0" added), else
// fixed notation with ".0" added to a whole number.
void append_float_repr(std::string& out, double x) {
    if (std::isnan(x)) {
        out += "nan";
        return;
    }
    if (std::isinf(x)) {
        out += x > 0 ? "inf" : "-inf";
        return;
    }
    if (std::signbit(x)) out += '-';
    x = std::fabs(x);
    if (x == 0.0) {
        out += "0.0";
        return;
    }
    // Shortest round-trip digits in scientific form: "d[.ddd]e[+-]XX".
    char buf[32];
    const auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
    const char* e = static_cast<const char*>(std::memchr(buf, 'e', static_cast<std::size_t>(res.ptr - buf)));
    char digits[24];
    int n = 0;
    for (const char* p = buf; p < e; ++p)
        if (*p != '.') digits[n++] = *p;
    int exp10 = 0;
    std::from_chars(e + (e[1] == '+' ? 2 : 1), res.ptr, exp10);
    const int decpt = exp10 + 1;
    if (decpt <= -4 || decpt > 16) {
        out += digits[0];
        if (n > 1) {
            out += '.';
            out.append(digits + 1, static_cast<std::size_t>(n - 1));
        }
        const int ex = decpt - 1;
        out += ex < 0 ? "e-" : "e+";
        const int a = ex < 0 ? -ex : ex;
        if (a < 10) out += '0';
        char eb[8];
        const auto er = std::to_chars(eb, eb + sizeof eb, a);
        out.append(eb, static_cast<std::size_t>(er.ptr - eb));
    } else if (decpt <= 0) {
        out += "0.";
        out.append(static_cast<std::size_t>(-decpt), '0');
        out.append(digits, static_cast<std::size_t>(n));
    } else if (decpt >= n) {
        out.append(digits, static_cast<std::size_t>(n));
        out.append(static_cast<std::size_t>(decpt - n), '0');
        out += ".0";
    } else {
        out.append(digits, static_cast<std::size_t>(decpt));
        out += '.';
        out.append(digits + decpt, static_cast<std::size_t>(n - decpt));
    }
}

std::string format_csv_rows(const std::vector<CsvColumn>& columns, std::size_t n_rows) {
    std::string out;
    out.reserve(n_rows * columns.size() * 12);
    char buf[24];
    for (std::size_t r = 0; r < n_rows; ++r) {
        for (std::size_t c = 0; c < columns.size(); ++c) {
            if (c) out += ',';
            if (columns[c].f64) {
                append_float_repr(out, columns[c].f64[r]);
            } else {
                const auto res = std::to_chars(buf, buf + sizeof buf, columns[c].i64[r]);
                out.append(buf, static_cast<std::size_t>(res.ptr - buf));
            }
        }
        out += '\n';
    }
    return out;
}

}  // namespace trackcore
