/* allreduce.c: the smallest program that uses gx from outside its source tree.
 *
 * Every rank fills a float vector with rank + 1 and sums it across ranks with gx_allreduce; then
 * every element must be 1 + 2 + ... + size.  Rank, size and the rendezvous come from the
 * environment (GX_RANK, GX_SIZE, GX_STORE; or Slurm, Open MPI) or from --flags: every gx setting
 * works here, e.g. --transport udp --udp-ip 127.0.0.1, because the program hands its arguments to
 * gx_config_parse.
 *
 *   make                                   (needs gx.pc on PKG_CONFIG_PATH: docs/install.md)
 *   gx-run -n 2 -- ./allreduce             (or by hand:)
 *   GX_RANK=0 GX_SIZE=2 ./allreduce & GX_RANK=1 GX_SIZE=2 ./allreduce
 *
 * Prints one line per rank; exits 0 when the sum is right, 1 when it is not or gx failed, 2 on a
 * bad flag or GX_* variable. */
#include <stdio.h>
#include <stdlib.h>

#include <gx/gx.h>

int main(int argc, char **argv)
{
	struct gx_comm_opts opts;
	struct gx_comm *comm;
	size_t count = 1 << 20;          /* 4 MiB of float32: many packets, one call */

	/* defaults, then GX_* variables, then --flags (the flag wins) */
	if (gx_comm_opts_default(&opts) < 0 || gx_config_parse(&argc, argv, &opts) < 0) {
		fprintf(stderr, "allreduce: %s\n", gx_last_error());
		return 2;
	}
	if (argc > 1) {
		fprintf(stderr, "allreduce: unknown argument '%s' (takes gx's settings only; see gx-info --help)\n",
			argv[1]);
		return 2;
	}
	if (gx_comm_create(&opts, &comm) < 0) {
		fprintf(stderr, "allreduce: cannot join the job: %s\n", gx_last_error());
		return 1;
	}
	uint32_t rank = gx_comm_rank(comm), size = gx_comm_size(comm);
	float *grad = malloc(count * sizeof(*grad));
	if (!grad) {
		fprintf(stderr, "allreduce: rank %u: out of memory\n", rank);
		gx_comm_abort(comm);
		gx_comm_destroy(comm);
		return 1;
	}
	for (size_t i = 0; i < count; i++)
		grad[i] = (float)(rank + 1);

	gx_status_t st = gx_allreduce(comm, grad, count, GX_OP_SUM, NULL);
	if (st < 0) {
		fprintf(stderr, "allreduce: rank %u: %s: %s\n", rank, gx_status_str(st), gx_last_error());
		gx_comm_abort(comm);      /* the other ranks stop now instead of at their peer timeout */
		free(grad);
		gx_comm_destroy(comm);
		return 1;
	}
	/* small integers are exact in float32, so every element must be exactly this */
	float want = (float)size * (float)(size + 1) / 2.0f;
	size_t wrong = 0;
	for (size_t i = 0; i < count; i++)
		wrong += grad[i] != want;
	printf("allreduce: rank %u of %u: %zu floats, sum %g (expected %g): %s\n", rank, size, count,
	       (double)grad[0], (double)want, wrong ? "WRONG" : "ok");
	free(grad);
	gx_comm_destroy(comm);
	return wrong ? 1 : 0;
}
