/*
 * karp-pcap-immediate.so: preloaded into ucarp (LD_PRELOAD) so that it reads each CARP advertisement when
 * it arrives.
 *
 * ucarp opens its capture with pcap_open_live(interface, snaplen, 0, 1000 ms) and polls the capture's
 * descriptor. On Linux, libpcap (>= 1.5) then captures into a TPACKET_V3 ring whose 2 MiB of blocks reach
 * user space only when a block fills or its 1000 ms timeout expires: an advertisement waits up to a second
 * before ucarp reads it, a different share of that second on every node. A backup's dead interval counts
 * from that read, so the wait adds to every failover, and it is larger than the skews that are meant to
 * order the backups, which then often promote together.
 *
 * This pcap_open_live opens the same capture in immediate mode (libpcap uses TPACKET_V2 then, and each
 * packet wakes the poll at once) with a 64 KiB ring: CARP traffic is one small packet per node per
 * second. Everything else is what libpcap's own pcap_open_live does. The pcap functions it calls come from
 * the libpcap that ucarp links; this object adds no dependency of its own (the references are weak, so a
 * program without libpcap that loads it anyway starts as usual), and it takes itself out of the
 * environment when loaded, so ucarp's up and down scripts, which inherit ucarp's environment, do not load it.
 *
 * It also holds back a leaving master's advertisement for a moment, when the agent asks for it
 * (PCAP_IMMEDIATE_HOLD_MS=N PCAP_IMMEDIATE_DEAD_MS=M in ucarp's environment, taken out like LD_PRELOAD).
 * A leaving master announces an advertisement interval longer than the backups' dead interval, and ucarp's
 * backups then take over at once ("Putting MASTER DOWN (going to time out)"): all of them together, when nothing
 * else sets them apart. So an advertisement of an interval (advbase + advskew/256 s) longer than M ms
 * reaches ucarp only N ms after it arrived, and not at all when another advertisement of the same vhid that
 * times nobody out arrives first: then the backup that held back least has taken over and is advertising,
 * and ucarp reads its advertisement instead, as a backup does. Repeats of the held one are dropped, while it
 * is held and, once it was dropped, for the dead interval after it (or until its sender advertises as a
 * master again). The agent gives each node a different N (its skew), so the backups take over one at a time.
 * Each held advertisement ends in one line on standard error, as ucarp's own log lines do.
 */
#define _GNU_SOURCE
#include <pcap/pcap.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RING_BYTES (64 * 1024)
#define ETHER_HEADER 14
#define ETHERTYPE_IPV4 0x0800
#define IPPROTO_CARP 112
/* Ethernet + the longest IPv4 header + CARP's 36 bytes: all that ucarp reads of a packet. */
#define HELD_BYTES (ETHER_HEADER + 60 + 36)

#pragma weak pcap_create
#pragma weak pcap_set_snaplen
#pragma weak pcap_set_promisc
#pragma weak pcap_set_timeout
#pragma weak pcap_set_immediate_mode
#pragma weak pcap_set_buffer_size
#pragma weak pcap_activate
#pragma weak pcap_geterr
#pragma weak pcap_statustostr
#pragma weak pcap_close
#pragma weak pcap_fileno
#pragma weak pcap_datalink

/* The hold (see above): off unless both settings are whole numbers above 0. */
static long hold_ms, dead_ms;
static int capture_fd = -1, capture_ethernet;

static long setting(const char *name)
{
	const char *value = getenv(name);
	char *end;
	long v = value != NULL ? strtol(value, &end, 10) : 0;
	if (value == NULL || *value == '\0' || *end != '\0' || v < 1 || v > 3600 * 1000) v = 0;
	unsetenv(name);
	return v;
}

__attribute__((constructor)) static void leave_environment(void)
{
	unsetenv("LD_PRELOAD");
	hold_ms = setting("PCAP_IMMEDIATE_HOLD_MS");
	dead_ms = setting("PCAP_IMMEDIATE_DEAD_MS");
	if (dead_ms == 0) hold_ms = 0;
}

pcap_t *pcap_open_live(const char *device, int snaplen, int promisc, int to_ms, char *errbuf)
{
	pcap_t *p = pcap_create(device, errbuf);
	if (p == NULL)
		return NULL;
	int status = pcap_set_snaplen(p, snaplen);
	if (status == 0)
		status = pcap_set_promisc(p, promisc);
	if (status == 0)
		status = pcap_set_timeout(p, to_ms);
	if (status == 0)
		status = pcap_set_immediate_mode(p, 1);
	if (status == 0)
		status = pcap_set_buffer_size(p, RING_BYTES);
	if (status == 0)
		status = pcap_activate(p);
	if (status < 0) {
		/* libpcap's wording: the device, then what went wrong (pcap_geterr holds the detail, if any). */
		const char *why = pcap_geterr(p);
		snprintf(errbuf, PCAP_ERRBUF_SIZE, "%s: %s", device,
			 status == PCAP_ERROR && why != NULL && why[0] != '\0' ? why : pcap_statustostr(status));
		pcap_close(p);
		return NULL;
	}
	capture_fd = pcap_fileno(p);
	capture_ethernet = pcap_datalink(p) == DLT_EN10MB;
	return p;
}

static struct {
	int on;
	struct timespec since;
	struct pcap_pkthdr header;
	unsigned char bytes[HELD_BYTES];
	uint8_t vhid;
	char from[INET_ADDRSTRLEN];
} held;

/* A leaving master sends its advertisement more than once: once one was dropped, so are its repeats. */
static struct {
	int on;
	struct timespec since; /* when the dropped one arrived */
	uint8_t vhid;
	char from[INET_ADDRSTRLEN];
} superseded;

static struct timespec now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static long long ns_since(const struct timespec *t)
{
	struct timespec n = now();
	return (n.tv_sec - t->tv_sec) * 1000000000LL + (n.tv_nsec - t->tv_nsec);
}

/* What a captured packet is to the hold. */
enum kind { OTHER, ADVERT, TIMING_OUT };

static enum kind kind_of(const struct pcap_pkthdr *h, const u_char *p, uint8_t *vhid, char *from)
{
	if (!capture_ethernet || h->caplen < ETHER_HEADER + 20 || (p[12] << 8 | p[13]) != ETHERTYPE_IPV4) return OTHER;
	const u_char *ip = p + ETHER_HEADER;
	unsigned ip_len = (ip[0] & 0x0f) * 4u;
	if (ip[0] >> 4 != 4 || ip_len < 20 || ip[9] != IPPROTO_CARP || h->caplen < ETHER_HEADER + ip_len + 36) return OTHER;
	const u_char *carp = ip + ip_len;
	if (carp[0] >> 4 != 2 || (carp[0] & 0x0f) != 1) return OTHER;
	*vhid = carp[1];
	inet_ntop(AF_INET, ip + 12, from, INET_ADDRSTRLEN);
	/* ucarp's test, in microseconds: the announced interval against advbase x deadratio. */
	long long interval_us = carp[5] * 1000000LL + carp[2] * 1000000LL / 256;
	return interval_us > dead_ms * 1000LL ? TIMING_OUT : ADVERT;
}

static pcap_handler ucarp_handler;

static void screen(u_char *user, const struct pcap_pkthdr *h, const u_char *p)
{
	uint8_t vhid;
	char from[INET_ADDRSTRLEN];
	enum kind kind = kind_of(h, p, &vhid, from);
	if (kind != OTHER && superseded.on && vhid == superseded.vhid && !strcmp(from, superseded.from)) {
		if (kind == TIMING_OUT && ns_since(&superseded.since) < (dead_ms + 1000) * 1000000LL) return;
		superseded.on = 0;
	}
	if (kind == OTHER || (held.on && vhid != held.vhid) || (kind == TIMING_OUT && !held.on && h->caplen > HELD_BYTES)) {
		ucarp_handler(user, h, p);
	} else if (kind == TIMING_OUT) {
		if (held.on) return; /* a repeat of the held one */
		held.on = 1;
		held.since = now();
		held.header = *h;
		memcpy(held.bytes, p, h->caplen);
		held.vhid = vhid;
		memcpy(held.from, from, sizeof held.from);
	} else {
		if (held.on) {
			held.on = 0;
			superseded.on = 1;
			superseded.since = held.since;
			superseded.vhid = held.vhid;
			memcpy(superseded.from, held.from, sizeof superseded.from);
			fprintf(stderr, "karp-pcap-immediate: dropped the leaving advertisement of vhid %u from %s: %s advertised %lld ms later\n",
				held.vhid, held.from, from, ns_since(&held.since) / 1000000);
		}
		ucarp_handler(user, h, p);
	}
}

/* Nanoseconds until the held advertisement is due (0 or less: due now). */
static long long held_left_ns(void)
{
	return hold_ms * 1000000LL - ns_since(&held.since);
}

static int held_due(void)
{
	return held.on && held_left_ns() <= 0;
}

static void pass_held(pcap_handler handler, u_char *user)
{
	held.on = 0;
	fprintf(stderr, "karp-pcap-immediate: passed on the leaving advertisement of vhid %u from %s after %lld ms\n", held.vhid,
		held.from, ns_since(&held.since) / 1000000);
	handler(user, &held.header, held.bytes);
}

int pcap_dispatch(pcap_t *p, int cnt, pcap_handler handler, u_char *user)
{
	static int (*next)(pcap_t *, int, pcap_handler, u_char *);
	if (next == NULL) next = (int (*)(pcap_t *, int, pcap_handler, u_char *))dlsym(RTLD_NEXT, "pcap_dispatch");
	if (hold_ms == 0 || pcap_fileno(p) != capture_fd) return next(p, cnt, handler, user);
	/* The poll below woke ucarp for the held advertisement: no packet may be waiting, and reading then blocks. */
	if (held_due()) {
		pass_held(handler, user);
		return 1;
	}
	ucarp_handler = handler;
	return next(p, cnt, screen, user);
}

/* ucarp's main loop polls the capture alone; while an advertisement is held, it wakes when the hold ends. */
int poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
	static int (*next)(struct pollfd *, nfds_t, int);
	if (next == NULL) next = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
	if (!held.on || nfds != 1 || fds[0].fd != capture_fd) return next(fds, nfds, timeout);
	long long left_ns = held_left_ns();
	int left = left_ns <= 0 ? 0 : (int)((left_ns + 999999) / 1000000);
	int ready = next(fds, nfds, timeout >= 0 && timeout < left ? timeout : left);
	if (ready == 0 && held_due()) {
		fds[0].revents = POLLIN;
		return 1;
	}
	return ready;
}
