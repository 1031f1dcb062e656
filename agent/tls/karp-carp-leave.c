/*
 * karp-carp-leave: sends CARP advertisements as a master of the group would, for two occasions:
 * telling the backups that their master is going away now, instead of letting them wait out the dead
 * interval; and, from a master that has just yielded, asking the preferred master for a gratuitous ARP.
 *
 *   karp-carp-leave --srcip ADDRESS --vhid N --vip ADDRESS --passfile FILE --advbase SECONDS [--advskew N]
 *
 * Sends two CARP advertisements (50 ms apart) for vhid N from ADDRESS to 224.0.0.18, signed as ucarp
 * signs them (HMAC-SHA1 keyed with the first line of FILE, over version, type, vhid, VIP and counter),
 * announcing an advertisement interval of --advbase seconds with skew --advskew (default 255).
 * Leaving: ucarp's backups treat a master that announces an interval longer than their own advbase x
 * deadratio as timed out at once ("Putting MASTER DOWN (going to time out)"), so the caller passes
 * advbase x deadratio + 1. A node whose ucarp runs with a far larger deadratio (the agent's listening
 * mode, deadratio 255) does not react. The caller must have stopped its own ucarp first: a master that
 * kept advertising would win right back.
 * After a yield: with the node's own advbase and advskew, the advertisement is the one its ucarp sent as
 * master; the preferred master answers it with a gratuitous ARP ("Non-preferred master advertising:
 * reasserting control of VIP"), and backups take it as a master's advertisement like any other.
 * Needs CAP_NET_RAW. Exit codes: 0 sent, 2 usage or an unreadable FILE, 3 the socket or send failed.
 */
#include <bearssl.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IPPROTO_CARP 112
#define CARP_VERSION 2
#define CARP_ADVERTISEMENT 1
#define CARP_TTL 255
#define CARP_GROUP "224.0.0.18"
/* ucarp's key: the password and its terminating NUL, at most 20 bytes. */
#define KEY_MAX 20

struct carp_header {
	uint8_t version_type; /* version in the high nibble, type in the low one */
	uint8_t vhid;
	uint8_t advskew;
	uint8_t authlen; /* counter + digest, in 32-bit words */
	uint8_t pad;
	uint8_t advbase;
	uint16_t cksum;
	uint32_t counter[2];
	unsigned char md[20];
} __attribute__((packed));

static const char usage[] =
	"usage: karp-carp-leave --srcip ADDRESS --vhid N --vip ADDRESS --passfile FILE --advbase SECONDS [--advskew N]";

static _Noreturn void fail(int code, const char *what)
{
	fprintf(stderr, "karp-carp-leave: %s\n", what);
	exit(code);
}

static unsigned number(const char *s, unsigned min, unsigned max, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < min || v > max) fail(2, what);
	return (unsigned)v;
}

static uint16_t checksum(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint32_t sum = 0;
	for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1) sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

int main(int argc, char **argv)
{
	const char *srcip = NULL, *vip = NULL, *passfile = NULL, *vhid = NULL, *advbase = NULL, *advskew = "255";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--srcip")) srcip = argv[i + 1];
		else if (!strcmp(argv[i], "--vip")) vip = argv[i + 1];
		else if (!strcmp(argv[i], "--passfile")) passfile = argv[i + 1];
		else if (!strcmp(argv[i], "--vhid")) vhid = argv[i + 1];
		else if (!strcmp(argv[i], "--advbase")) advbase = argv[i + 1];
		else if (!strcmp(argv[i], "--advskew")) advskew = argv[i + 1];
		else fail(2, usage);
	}
	if (argc % 2 != 1 || !srcip || !vip || !passfile || !vhid || !advbase) fail(2, usage);

	struct in_addr src, vaddr, group;
	if (inet_pton(AF_INET, srcip, &src) != 1) fail(2, "--srcip is not an IPv4 address");
	if (inet_pton(AF_INET, vip, &vaddr) != 1) fail(2, "--vip is not an IPv4 address");
	inet_pton(AF_INET, CARP_GROUP, &group);

	/* As ucarp reads --passfile: the first line, without its newline. */
	char line[512];
	FILE *f = fopen(passfile, "r");
	if (!f) fail(2, "cannot open the --passfile");
	if (!fgets(line, sizeof line, f)) fail(2, "cannot read the --passfile");
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	size_t keylen = strlen(line) + 1;
	if (keylen > KEY_MAX) fail(2, "the password in --passfile is longer than 19 bytes");

	struct carp_header ch;
	memset(&ch, 0, sizeof ch);
	ch.version_type = CARP_VERSION << 4 | CARP_ADVERTISEMENT;
	ch.vhid = (uint8_t)number(vhid, 1, 255, "--vhid must be 1-255");
	ch.advskew = (uint8_t)number(advskew, 0, 255, "--advskew must be 0-255");
	ch.authlen = 7;
	ch.advbase = (uint8_t)number(advbase, 1, 255, "--advbase must be 1-255");
	uint32_t counter[2];
	if (getrandom(counter, sizeof counter, 0) != sizeof counter) {
		counter[0] = (uint32_t)time(NULL);
		counter[1] = (uint32_t)getpid();
	}
	ch.counter[0] = counter[0];
	ch.counter[1] = counter[1];

	br_hmac_key_context kc;
	br_hmac_context hc;
	br_hmac_key_init(&kc, &br_sha1_vtable, line, keylen);
	br_hmac_init(&hc, &kc, 0);
	uint8_t version = CARP_VERSION, type = CARP_ADVERTISEMENT;
	br_hmac_update(&hc, &version, 1);
	br_hmac_update(&hc, &type, 1);
	br_hmac_update(&hc, &ch.vhid, 1);
	br_hmac_update(&hc, &vaddr.s_addr, 4);
	br_hmac_update(&hc, ch.counter, sizeof ch.counter);
	br_hmac_out(&hc, ch.md);
	memset(line, 0, sizeof line);
	ch.cksum = checksum(&ch, sizeof ch);

	int s = socket(AF_INET, SOCK_RAW, IPPROTO_CARP);
	if (s < 0) fail(3, "cannot open a raw socket (CAP_NET_RAW)");
	int ttl = CARP_TTL;
	struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr = src};
	if (setsockopt(s, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl) < 0 ||
	    setsockopt(s, IPPROTO_IP, IP_MULTICAST_IF, &src, sizeof src) < 0 ||
	    bind(s, (struct sockaddr *)&from, sizeof from) < 0)
		fail(3, "cannot send from --srcip");
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr = group};
	for (int i = 0; i < 2; i++) {
		if (i > 0) nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
		if (sendto(s, &ch, sizeof ch, 0, (struct sockaddr *)&to, sizeof to) != (ssize_t)sizeof ch)
			fail(3, "sending the advertisement failed");
	}
	close(s);
	return 0;
}
