// gloo_allreduce_bench.cc: Gloo's allreduce (float, sum, in place) with gx-bench allreduce's sweep and
// CSV (peer=gloo), so scripts/gx-compare puts gx, Open MPI and Gloo side by side on the same ranks and
// link.  The only C++ in the project: Gloo is a C++ library.
//
//   gloo-allreduce-bench --rank R --size N --store-dir DIR --addr IP [-b 4] [-e 64M] [-f 2] [-n 20]
//                        [-w 5] [--warm-ms 50] [-c 1] [--label tcp] [--algo LIST] [--busy-poll 0|1]
// One process per rank; rank and size also from GX_RANK / GX_SIZE, the store directory from
// GX_GLOO_STORE_DIR.  Rendezvous: gloo::rendezvous::FileStore in a directory every rank sees (this
// Gloo has no TCP store); the data path: gloo::transport::tcp bound to --addr (or --iface), so a rank
// can run inside a network namespace.
// --algo: a comma-separated list, or "all", of
//   ring, ring_chunked, halving_doubling, bcube    the algorithm classes (built once per size, run
//                                                  repeatedly, as Gloo's own benchmark does)
//   allreduce_ring, allreduce_bcube                the gloo::allreduce() entry point with that algorithm
// Each size is measured with every listed algorithm in turn; each gets its own row, transport column
// "LABEL:ALGO" ("LABEL:ALGO+busypoll" with --busy-poll 1).  Time per size = median over -n iterations
// of the slowest rank's time (as gx-bench and mpi-allreduce-bench); warm-up: -w iterations, repeated
// until --warm-ms passed on every rank.
// --busy-poll 1 puts every pair in Gloo's synchronous mode with busy polling (the calling thread reads
// the socket itself instead of waiting for the device's event-loop thread); the entry point does not
// support that mode, so with it only the algorithm classes run.  In that mode a rank writes to the socket
// from the calling thread and nobody reads meanwhile: two ranks sending each other more than their
// sockets buffer both block in write until Gloo's timeout ("Write timeout", seen at 64 MiB), so it
// takes messages up to 1 MiB only.
#include <getopt.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <gloo/algorithm.h>
#include <gloo/allreduce.h>
#include <gloo/allreduce_bcube.h>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/allreduce_ring.h>
#include <gloo/allreduce_ring_chunked.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

extern "C" {
#include "bench.h"
}

namespace {

const char *const prog = "gloo-allreduce-bench";
// largest message of --busy-poll 1 (see the top of the file)
const uint64_t busy_poll_max = 1ull << 20;

double now_us()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

enum class Algo { ring, ring_chunked, halving_doubling, bcube, entry_ring, entry_bcube };

struct AlgoName {
	Algo algo;
	const char *name;
	bool entry_point;   // gloo::allreduce(): unbound buffers, no synchronous mode
};

const AlgoName algo_names[] = {
	{ Algo::ring, "ring", false },
	{ Algo::ring_chunked, "ring_chunked", false },
	{ Algo::halving_doubling, "halving_doubling", false },
	{ Algo::bcube, "bcube", false },
	{ Algo::entry_ring, "allreduce_ring", true },
	{ Algo::entry_bcube, "allreduce_bcube", true },
};

// "all" or a comma-separated list of names; false (and a message) for an unknown name.
bool parse_algos(const char *arg, std::vector<const AlgoName *> &out)
{
	out.clear();
	std::string s(arg);
	if (s == "all") {
		for (const AlgoName &a : algo_names)
			out.push_back(&a);
		return true;
	}
	size_t pos = 0;
	while (pos <= s.size()) {
		size_t comma = s.find(',', pos);
		std::string name = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
		const AlgoName *found = nullptr;
		for (const AlgoName &a : algo_names)
			if (name == a.name)
				found = &a;
		if (!found) {
			std::fprintf(stderr, "%s: --algo %s: unknown algorithm '%s' (all, or a list of ring, "
				     "ring_chunked, halving_doubling, bcube, allreduce_ring, allreduce_bcube)\n",
				     prog, arg, name.c_str());
			return false;
		}
		out.push_back(found);
		if (comma == std::string::npos)
			break;
		pos = comma + 1;
	}
	return true;
}

// Control traffic (the result check's count, the warm-up's "more" flag, the timings' maximum) goes
// through the algorithm classes, which work in both pair modes.
template <typename T>
void control_allreduce(const std::shared_ptr<gloo::Context> &ctx, T *v, int n,
		       const gloo::ReductionFunction<T> *fn)
{
	gloo::AllreduceRing<T> ar(ctx, std::vector<T *>{ v }, n, fn);
	ar.run();
}

// One algorithm bound to one buffer and size: run() is one allreduce.
class Runner {
public:
	Runner(const std::shared_ptr<gloo::Context> &ctx, Algo algo, float *buf, size_t count, uint32_t tag)
	{
		std::vector<float *> ptrs{ buf };
		int n = (int)count;
		switch (algo) {
		case Algo::ring: legacy_.reset(new gloo::AllreduceRing<float>(ctx, ptrs, n)); break;
		case Algo::ring_chunked: legacy_.reset(new gloo::AllreduceRingChunked<float>(ctx, ptrs, n)); break;
		case Algo::halving_doubling: legacy_.reset(new gloo::AllreduceHalvingDoubling<float>(ctx, ptrs, n)); break;
		case Algo::bcube: legacy_.reset(new gloo::AllreduceBcube<float>(ctx, ptrs, n)); break;
		case Algo::entry_ring:
		case Algo::entry_bcube:
			opts_.reset(new gloo::AllreduceOptions(ctx));
			opts_->setAlgorithm(algo == Algo::entry_ring ? gloo::AllreduceOptions::Algorithm::RING
								     : gloo::AllreduceOptions::Algorithm::BCUBE);
			opts_->setOutput(buf, count);
			opts_->setReduceFunction(static_cast<void (*)(void *, const void *, const void *, size_t)>(
				&gloo::sum<float>));
			opts_->setTag(tag);
			break;
		}
	}

	void run()
	{
		if (legacy_)
			legacy_->run();
		else
			gloo::allreduce(*opts_);
	}

private:
	std::unique_ptr<gloo::Algorithm> legacy_;
	std::unique_ptr<gloo::AllreduceOptions> opts_;
};

void usage()
{
	std::fprintf(stderr,
		     "usage: %s [--rank R] [--size N] [--store-dir DIR] [--addr IP | --iface IF] [-b SIZE] [-e SIZE]\n"
		     "       [-f FACTOR] [-n ITERS] [-w ITERS] [--warm-ms MS] [-c 0|1] [--label NAME] [--algo LIST|all]\n"
		     "       [--busy-poll 0|1] [--prefix P] [--timeout-ms MS]\n"
		     "rank and size default to GX_RANK / GX_SIZE, the store directory to GX_GLOO_STORE_DIR;\n"
		     "algorithms: ring, ring_chunked, halving_doubling, bcube, allreduce_ring, allreduce_bcube\n",
		     prog);
}

long env_long(const char *name, long fallback)
{
	const char *v = std::getenv(name);
	if (!v || !*v)
		return fallback;
	char *end = nullptr;
	long x = std::strtol(v, &end, 10);
	return *end ? -2 : x;
}

} // namespace

int main(int argc, char **argv)
{
	uint64_t minb = 4, maxb = 64ull << 20;
	double factor = 2.0;
	long iters = 20, warm = 5, do_check = 1, warm_ms = 50, busy_poll = 0, timeout_ms = 300000;
	long rank = env_long("GX_RANK", -1), size = env_long("GX_SIZE", -1);
	const char *label = "tcp";
	const char *store_dir = std::getenv("GX_GLOO_STORE_DIR");
	const char *addr = nullptr, *iface = nullptr, *prefix = "gloo";
	std::vector<const AlgoName *> algos;
	parse_algos("ring_chunked", algos);

	enum { O_LABEL = 256, O_WARM_MS, O_ALGO, O_RANK, O_SIZE, O_STORE, O_ADDR, O_IFACE, O_BUSY, O_PREFIX, O_TIMEOUT };
	static const struct option lo[] = {
		{ "label", required_argument, nullptr, O_LABEL },     { "warm-ms", required_argument, nullptr, O_WARM_MS },
		{ "algo", required_argument, nullptr, O_ALGO },       { "rank", required_argument, nullptr, O_RANK },
		{ "size", required_argument, nullptr, O_SIZE },       { "store-dir", required_argument, nullptr, O_STORE },
		{ "addr", required_argument, nullptr, O_ADDR },       { "iface", required_argument, nullptr, O_IFACE },
		{ "busy-poll", required_argument, nullptr, O_BUSY },  { "prefix", required_argument, nullptr, O_PREFIX },
		{ "timeout-ms", required_argument, nullptr, O_TIMEOUT }, { "help", no_argument, nullptr, 'h' },
		{ nullptr, 0, nullptr, 0 }
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "b:e:f:n:w:c:h", lo, nullptr)) != -1) {
		char flag[40];
		const char *fl = bench_flag_name(ch, lo, flag, sizeof(flag));
		int bad = 0;
		switch (ch) {
		case 'b': bad = bench_size_arg(prog, fl, optarg, 1, BENCH_SIZE_MAX, &minb); break;
		case 'e': bad = bench_size_arg(prog, fl, optarg, 1, BENCH_SIZE_MAX, &maxb); break;
		case 'f': bad = bench_double_arg(prog, fl, optarg, 1.1, 1024.0, &factor); break;
		case 'n': bad = bench_long_arg(prog, fl, optarg, 1, 100000000, &iters); break;
		case 'w': bad = bench_long_arg(prog, fl, optarg, 0, 100000000, &warm); break;
		case 'c': bad = bench_long_arg(prog, fl, optarg, 0, 1, &do_check); break;
		case O_WARM_MS: bad = bench_long_arg(prog, fl, optarg, 0, 3600000, &warm_ms); break;
		case O_BUSY: bad = bench_long_arg(prog, fl, optarg, 0, 1, &busy_poll); break;
		case O_TIMEOUT: bad = bench_long_arg(prog, fl, optarg, 100, 86400000, &timeout_ms); break;
		case O_RANK: bad = bench_long_arg(prog, fl, optarg, 0, 65535, &rank); break;
		case O_SIZE: bad = bench_long_arg(prog, fl, optarg, 1, 65536, &size); break;
		case O_LABEL: label = optarg; break;
		case O_ALGO: bad = !parse_algos(optarg, algos); break;
		case O_STORE: store_dir = optarg; break;
		case O_ADDR: addr = optarg; break;
		case O_IFACE: iface = optarg; break;
		case O_PREFIX: prefix = optarg; break;
		case 'h': usage(); return 0;
		default: bad = 1; break;
		}
		if (bad) {
			usage();
			return 2;
		}
	}
	const char *why = nullptr;
	if (optind < argc)
		why = "unexpected argument";
	else if (rank < 0 || size < 1)
		why = "give --rank and --size (or GX_RANK and GX_SIZE)";
	else if (rank >= size)
		why = "--rank must be below --size";
	else if (!store_dir || !*store_dir)
		why = "give --store-dir DIR (or GX_GLOO_STORE_DIR), a directory every rank sees";
	else if (addr && iface)
		why = "give --addr or --iface, not both";
	else if (maxb < minb)
		why = "-e is below -b";
	else if (maxb / 4 > 0x7fffffff)
		why = "-e: Gloo's algorithms count elements in an int (at most 8G bytes of float32)";
	if (why) {
		std::fprintf(stderr, "%s: %s\n", prog, why);
		usage();
		return 2;
	}
	if (busy_poll && maxb > busy_poll_max) {
		std::fprintf(stderr, "%s: --busy-poll 1 takes messages up to 1M (-e): larger ones deadlock in Gloo's "
			     "synchronous mode, both ranks blocked in write\n", prog);
		return 2;
	}
	if (busy_poll) {
		std::vector<const AlgoName *> kept;
		for (const AlgoName *a : algos)
			if (!a->entry_point)
				kept.push_back(a);
		if (kept.empty()) {
			std::fprintf(stderr, "%s: --busy-poll 1: the gloo::allreduce() entry point has no synchronous "
				     "mode; list an algorithm class\n", prog);
			return 2;
		}
		algos = kept;
	}

	try {
		gloo::transport::tcp::attr attr;
		if (iface)
			attr.iface = iface;
		else
			attr.hostname = addr ? addr : "127.0.0.1";
		auto dev = gloo::transport::tcp::CreateDevice(attr);
		auto ctx = std::make_shared<gloo::rendezvous::Context>((int)rank, (int)size);
		ctx->setTimeout(std::chrono::milliseconds(timeout_ms));
		gloo::rendezvous::FileStore file_store(store_dir);
		gloo::rendezvous::PrefixStore store(prefix, file_store);
		ctx->connectFullMesh(store, dev);
		if (busy_poll)
			for (int p = 0; p < (int)size; p++)
				if (p != (int)rank)
					ctx->getPair(p)->setSync(true, true);

		size_t maxcount = maxb / 4 ? maxb / 4 : 1;
		float *buf = static_cast<float *>(bench_alloc(maxcount * 4));
		std::vector<double> t((size_t)iters);
		if (!buf) {
			std::fprintf(stderr, "%s: out of memory\n", prog);
			return 1;
		}
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		uint32_t oversub = (uint32_t)((size + ncpu - 1) / ncpu);
		std::string names;
		for (const AlgoName *a : algos)
			names += std::string(names.empty() ? "" : ",") + a->name;
		if (!rank) {
			std::printf("# gloo-allreduce-bench: %ld ranks, %ld cores online (oversub %u), transport %s "
				    "(gloo tcp on %s), algorithms %s, busy-poll %ld\n", size, ncpu, oversub, label,
				    iface ? iface : attr.hostname.c_str(), names.c_str(), busy_poll);
			bench_print_header(stdout);
		}
		uint32_t tag = 1;
		for (double bd = (double)minb; bd <= (double)maxb * 1.0000001; bd *= factor) {
			size_t count = (size_t)bd / 4 ? (size_t)bd / 4 : 1;
			for (const AlgoName *a : algos) {
				Runner run(ctx, a->algo, buf, count, tag++);
				unsigned long long wrong = 0;
				if (do_check) {
					for (size_t e = 0; e < count; e++)
						buf[e] = (float)((rank + 1) * (long)(e % 7 + 1));
					run.run();
					float tri = (float)(size * (size + 1) / 2);
					for (size_t e = 0; e < count; e++)
						wrong += buf[e] != tri * (float)(e % 7 + 1);
					control_allreduce(ctx, &wrong, 1, gloo::ReductionFunction<unsigned long long>::sum);
				}
				for (size_t e = 0; e < count; e++)
					buf[e] = 1.0f / (float)(rank + 1);
				double w0 = now_us();
				for (;;) {
					for (long i = 0; i < warm; i++)
						run.run();
					int more = now_us() - w0 < (double)warm_ms * 1000.0;
					control_allreduce(ctx, &more, 1, gloo::ReductionFunction<int>::max);
					if (!more || warm == 0)
						break;
				}
				for (long i = 0; i < iters; i++) {
					double t0 = now_us();
					run.run();
					t[(size_t)i] = now_us() - t0;
				}
				control_allreduce(ctx, t.data(), (int)iters, gloo::ReductionFunction<double>::max);
				if (!rank) {
					std::string transport = std::string(label) + ":" + a->name + (busy_poll ? "+busypoll" : "");
					struct bench_row r;
					std::memset(&r, 0, sizeof(r));
					r.peer = "gloo";
					r.transport = transport.c_str();
					r.op = "allreduce";
					r.nranks = (uint32_t)size;
					r.oversub = oversub;
					r.bytes = count * 4;
					r.count = count;
					r.type = "float32";
					r.redop = "sum";
					r.iters = (uint32_t)iters;
					r.min_us = bench_min(t.data(), (size_t)iters);
					r.p90_us = bench_percentile(t.data(), (size_t)iters, 90.0);
					r.time_us = bench_median(t.data(), (size_t)iters);
					r.algbw_GBps = (double)(count * 4) / (r.time_us * 1e3);
					r.busbw_GBps = r.algbw_GBps * 2.0 * (double)(size - 1) / (double)size;
					r.wrong = wrong;
					bench_print_row(stdout, &r);
				}
			}
		}
		bench_free(buf, maxcount * 4);
	} catch (const std::exception &e) {
		std::fprintf(stderr, "%s: rank %ld: %s\n", prog, rank, e.what());
		return 1;
	}
	return 0;
}
