/*
 * chanfs-vmm — connect to a vhost-user back-end as QEMU 7.2 would, print
 * what was negotiated and the config space, optionally stream bytes
 * through queue 0 and read them back from queue 1 (chanfs-echodev's
 * contract), disconnect.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chanfs/virtio.h"
#include "vmm.h"
#include "vmm_echo.h"

static void vmm_cli_usage(void)
{
	fprintf(stderr,
	        "usage: chanfs-vmm -s PATH [options]\n"
	        "  -s PATH          vhost-user socket to connect to\n"
	        "  -n BYTES         echo BYTES through queue 0 -> queue 1\n"
	        "  -q QUEUES        queues to set up (default 2)\n"
	        "  -Q SIZE          queue size (default 256)\n"
	        "  -m MIB           guest memory in MiB (default 64)\n"
	        "  -2               two memory regions\n"
	        "  -e               request EVENT_IDX\n"
	        "  -i               request INDIRECT_DESC and use it\n"
	        "  -o               request IN_ORDER\n"
	        "  -r               NEED_REPLY on every message (REPLY_ACK)\n"
	        "  -R               do not negotiate REPLY_ACK\n"
	        "  -c SIZE          config bytes to read (default 8)\n"
	        "  -S SEED          echo seed (default: time)\n"
	        "  -v               trace messages\n");
	exit(2);
}

static void vmm_cli_features(const char *what, uint64_t f)
{
	static const struct { int bit; const char *name; } names[] = {
		{ VIRTIO_RING_F_INDIRECT_DESC_BIT, "INDIRECT_DESC" },
		{ VIRTIO_RING_F_EVENT_IDX_BIT, "EVENT_IDX" },
		{ VHOST_USER_F_PROTOCOL_FEATURES_BIT, "PROTOCOL_FEATURES" },
		{ VIRTIO_F_VERSION_1_BIT, "VERSION_1" },
		{ VIRTIO_F_IN_ORDER_BIT, "IN_ORDER" },
	};
	unsigned i;

	printf("%s 0x%016" PRIx64, what, f);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (f & VBIT(names[i].bit))
			printf(" %s", names[i].name);
	printf("\n");
}

int main(int argc, char **argv)
{
	struct vmm_opts o = { 0 };
	struct vmm_echo_opts eo = { 0 };
	struct vmm_echo_result er;
	const char *path = NULL;
	const uint8_t *cfg;
	struct vmm *v;
	uint32_t len, i;
	bool seeded = false;
	int c, rc = 0;

	while ((c = getopt(argc, argv, "s:n:q:Q:m:2eiorRc:S:v")) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'n': eo.bytes = strtoull(optarg, NULL, 0); break;
		case 'q': o.num_queues = strtoul(optarg, NULL, 0); break;
		case 'Q': o.queue_size = strtoul(optarg, NULL, 0); break;
		case 'm': o.mem_size = strtoull(optarg, NULL, 0) << 20; break;
		case '2': o.regions = 2; break;
		case 'e': o.features |= VBIT(VIRTIO_RING_F_EVENT_IDX_BIT); break;
		case 'i':
			o.features |= VBIT(VIRTIO_RING_F_INDIRECT_DESC_BIT);
			o.indirect = true;
			break;
		case 'o': o.features |= VBIT(VIRTIO_F_IN_ORDER_BIT); break;
		case 'r': o.need_reply = true; break;
		case 'R': o.no_reply_ack = true; break;
		case 'c': o.config_size = atoi(optarg); break;
		case 'S':
			eo.seed = strtoull(optarg, NULL, 0);
			seeded = true;
			break;
		case 'v': o.verbose = true; break;
		default: vmm_cli_usage();
		}
	}
	if (!path || optind != argc)
		vmm_cli_usage();
	v = vmm_connect(path, &o);
	if (!v) {
		fprintf(stderr, "chanfs-vmm: %s: %s\n", path, strerror(errno));
		return 1;
	}
	vmm_cli_features("offered features   ", vmm_offered_features(v));
	vmm_cli_features("negotiated features", vmm_features(v));
	printf("protocol features   offered 0x%" PRIx64 " negotiated 0x%"
	       PRIx64 "\n", vmm_offered_protocol_features(v),
	       vmm_protocol_features(v));
	if (vmm_queue_num(v))
		printf("queues              %u\n", vmm_queue_num(v));
	cfg = vmm_config(v, &len);
	printf("config (%u bytes)   ", len);
	for (i = 0; i < len; i++)
		printf(" %02x", cfg[i]);
	printf("\n");
	if (eo.bytes) {
		if (!seeded)
			eo.seed = (uint64_t)time(NULL);
		printf("echo %" PRIu64 " bytes, seed %" PRIu64 "\n", eo.bytes,
		       eo.seed);
		if (vmm_echo_run(v, &eo, &er) < 0) {
			fprintf(stderr, "chanfs-vmm: echo: %s\n", er.error);
			rc = 1;
		}
		printf("sent %" PRIu64 " received %" PRIu64 " fnv %016" PRIx64
		       " / %016" PRIx64 "\n", er.sent, er.received, er.sum_tx,
		       er.sum_rx);
		printf("tx buffers %" PRIu64 " used entries %" PRIu64
		       " signals %" PRIu64 "\n", er.tx_bufs, er.tx_entries,
		       er.tx_signals);
		printf("rx buffers %" PRIu64 " used entries %" PRIu64
		       " signals %" PRIu64 "\n", er.rx_bufs, er.rx_entries,
		       er.rx_signals);
	}
	vmm_disconnect(v);
	return rc;
}
