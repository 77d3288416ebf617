#pragma once
// Worker threads of the compiled kernels. Each kernel hands its items out in increasing order and
// joins their results in item order, so its output never depends on the number of threads.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace trackcore {

// Threads for `items` items: `threads` (0: one per hardware thread), at most one per item, at least 1.
inline int worker_count(int threads, std::size_t items) {
    const std::size_t n = threads > 0 ? static_cast<std::size_t>(threads)
                                      : std::max(1u, std::thread::hardware_concurrency());
    return static_cast<int>(std::max<std::size_t>(1, std::min(n, items)));
}

// Runs body(worker, i) for every i in [0, n) on `workers` threads (the calling thread is worker 0),
// each taking the next i from a shared counter. The first exception stops the handing out and is
// rethrown once every worker has stopped; a thread that cannot be started leaves its share to the others.
template <class Body>
void parallel_for(int workers, std::size_t n, Body&& body) {
    if (n == 0) return;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto work = [&](int w) {
        try {
            for (std::size_t i; !failed.load(std::memory_order_relaxed) && (i = next.fetch_add(1)) < n;) body(w, i);
        } catch (...) {
            failed = true;
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    const int n_workers = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(std::max(workers, 1)), n));
    for (int w = 1; w < n_workers; ++w) {
        try {
            pool.emplace_back(work, w);
        } catch (const std::system_error&) {
            break;
        }
    }
    work(0);
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace trackcore
