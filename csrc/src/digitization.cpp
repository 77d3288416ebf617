// Charge sharing over a cell grid and 8-connected clustering: the shared host/device functions of
// trackcore/digitization_device.hpp over std::vectors.
#include "digitization.hpp"

namespace trackcore::digi {

void deposit_segment(std::int64_t crossing, const double* seg, double charge, const double* shape,
                     std::vector<Contribution>& out) {
    dev::deposit_segment(seg, charge, shape,
                         [&](std::int64_t c0, std::int64_t c1, double q) { out.push_back({crossing, c0, c1, q}); });
}

std::vector<std::int64_t> cluster_cells(const std::int64_t* module, const std::int64_t* ch0,
                                        const std::int64_t* ch1, std::int64_t n) {
    // Clusters never span modules and the cells are sorted by module: each module's cells are
    // clustered alone and its cluster numbers follow those of the modules before it.
    std::vector<std::int64_t> label(n), parent(n);
    std::int64_t before = 0;
    for (std::int64_t begin = 0; begin < n;) {
        std::int64_t end = begin + 1;
        while (end < n && module[end] == module[begin]) ++end;
        const std::int64_t k = dev::cluster_module(ch0, ch1, begin, end, parent.data(), label.data());
        for (std::int64_t i = begin; i < end; ++i) label[i] += before;
        before += k;
        begin = end;
    }
    return label;
}

}  // namespace trackcore::digi
