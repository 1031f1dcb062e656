/*
 * karp-arp-watch: waits until another host announces an address with a gratuitous ARP.
 *
 *   karp-arp-watch --iface NAME --ip ADDRESS --timeout SECONDS [-- COMMAND [ARGUMENT...]]
 *
 * Listens on interface NAME for a broadcast ARP packet (request or reply) whose sender and target
 * protocol addresses are both ADDRESS and whose sender hardware address is not NAME's own: what ucarp's
 * master sends when it takes the VIP or reasserts it ("Non-preferred master advertising"), and what
 * `arping -U`/`-A` send. Every host on the segment updates its ARP cache from such a packet, so once it has
 * gone out, the clients of a master that yielded point at the new one. Prints the sender's MAC address.
 * Only packets that arrive after the socket is bound count; SECONDS (fractions allowed, up to 86400, the
 * longest VIP lease)
 * bounds the wait. COMMAND, if given, is started once the socket is bound (its output goes to stderr; it is
 * not waited for): whatever it provokes cannot slip past unseen. Needs CAP_NET_RAW.
 * Exit codes: 0 seen, 1 timeout, 2 usage, 3 the interface, the socket or starting COMMAND failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char usage[] = "usage: karp-arp-watch --iface NAME --ip ADDRESS --timeout SECONDS [-- COMMAND [ARGUMENT...]]";

static _Noreturn void fail(int code, const char *what)
{
	fprintf(stderr, "karp-arp-watch: %s\n", what);
	exit(code);
}

/* A refused value, named with what is allowed (the value is the caller's own argument, printed as given). */
static _Noreturn void refuse(const char *option, const char *value, const char *allowed)
{
	fprintf(stderr, "karp-arp-watch: %s \"%.64s\" is not %s\n", option, value, allowed);
	exit(2);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	const char *iface = NULL, *ip = NULL, *timeout = NULL;
	char **command = NULL;
	for (int i = 1; i < argc; i += 2) {
		if (!strcmp(argv[i], "--")) {
			if (i + 1 == argc) fail(2, usage);
			command = argv + i + 1;
			break;
		}
		if (i + 1 == argc) fail(2, usage);
		if (!strcmp(argv[i], "--iface")) iface = argv[i + 1];
		else if (!strcmp(argv[i], "--ip")) ip = argv[i + 1];
		else if (!strcmp(argv[i], "--timeout")) timeout = argv[i + 1];
		else fail(2, usage);
	}
	if (!iface || !ip || !timeout) fail(2, usage);
	struct in_addr addr;
	if (inet_pton(AF_INET, ip, &addr) != 1) refuse("--ip", ip, "an IPv4 address");
	char *end;
	double seconds = strtod(timeout, &end);
	if (*timeout == '\0' || *end != '\0' || !(seconds > 0 && seconds <= 86400)) refuse("--timeout", timeout, "a number of seconds above 0, at most 86400");
	if (strlen(iface) >= IFNAMSIZ) refuse("--iface", iface, "an interface name (at most 15 bytes)");

	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ARP));
	if (s < 0) fail(3, "cannot open a packet socket (CAP_NET_RAW)");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof ifr);
	strcpy(ifr.ifr_name, iface);
	if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
		fprintf(stderr, "karp-arp-watch: no interface named \"%s\"\n", iface);
		exit(3);
	}
	int ifindex = ifr.ifr_ifindex;
	if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) fail(3, "cannot read the interface's MAC address");
	unsigned char own[ETH_ALEN];
	memcpy(own, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	struct sockaddr_ll bound = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ARP), .sll_ifindex = ifindex};
	if (bind(s, (struct sockaddr *)&bound, sizeof bound) < 0) fail(3, "cannot listen on the interface");
	if (command) {
		posix_spawn_file_actions_t actions;
		pid_t pid;
		posix_spawn_file_actions_init(&actions);
		posix_spawn_file_actions_adddup2(&actions, 2, 1);
		int err = posix_spawnp(&pid, command[0], &actions, NULL, command, environ);
		posix_spawn_file_actions_destroy(&actions);
		if (err != 0) {
			fprintf(stderr, "karp-arp-watch: cannot start \"%.64s\": %s\n", command[0], strerror(err));
			exit(3);
		}
	}

	static const unsigned char broadcast[ETH_ALEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	long long deadline = now_ms() + (long long)(seconds * 1000 + 0.5);
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) return 1;
		struct pollfd pfd = {.fd = s, .events = POLLIN};
		int n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno != EINTR) fail(3, "poll failed");
		if (n <= 0) continue;
		unsigned char frame[ETH_FRAME_LEN];
		struct sockaddr_ll from;
		socklen_t fromlen = sizeof from;
		ssize_t len = recvfrom(s, frame, sizeof frame, 0, (struct sockaddr *)&from, &fromlen);
		if (len < 0) {
			if (errno == EINTR) continue;
			fail(3, "reading from the interface failed");
		}
		if (from.sll_pkttype == PACKET_OUTGOING) continue;
		if ((size_t)len < sizeof(struct ether_header) + sizeof(struct ether_arp)) continue;
		const struct ether_header *eh = (const struct ether_header *)frame;
		const struct ether_arp *arp = (const struct ether_arp *)(frame + sizeof *eh);
		if (memcmp(eh->ether_dhost, broadcast, ETH_ALEN) != 0) continue;
		if (ntohs(arp->ea_hdr.ar_hrd) != ARPHRD_ETHER || ntohs(arp->ea_hdr.ar_pro) != ETHERTYPE_IP ||
		    arp->ea_hdr.ar_hln != ETH_ALEN || arp->ea_hdr.ar_pln != 4)
			continue;
		unsigned short op = ntohs(arp->ea_hdr.ar_op);
		if (op != ARPOP_REQUEST && op != ARPOP_REPLY) continue;
		if (memcmp(arp->arp_spa, &addr.s_addr, 4) != 0 || memcmp(arp->arp_tpa, &addr.s_addr, 4) != 0) continue;
		if (memcmp(arp->arp_sha, own, ETH_ALEN) == 0) continue;
		const unsigned char *m = arp->arp_sha;
		printf("%02x:%02x:%02x:%02x:%02x:%02x\n", m[0], m[1], m[2], m[3], m[4], m[5]);
		return 0;
	}
}
