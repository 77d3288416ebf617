#pragma once
// CSV text of numeric columns, as the Python writer makes it: floats as Python's repr (the shortest
// string that reads back to the same double, in repr's layout), integers in decimal.
#include <cstdint>
#include <string>
#include <vector>

namespace trackcore {

// Appends repr(x) of a Python float: "0.1", "100.0", "1e+16", "1.5e-07", "-0.0", "nan", "inf", "-inf".
void append_float_repr(std::string& out, double x);

// One column of a table: doubles (formatted as repr) or 64-bit integers.
struct CsvColumn {
    const double* f64 = nullptr;
    const std::int64_t* i64 = nullptr;
};

// Rows "v0,v1,...\n" of n_rows rows of the columns (each holding n_rows values).
std::string format_csv_rows(const std::vector<CsvColumn>& columns, std::size_t n_rows);

}  // namespace trackcore
