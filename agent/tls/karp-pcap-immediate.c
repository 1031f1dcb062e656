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
 */
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>

#define RING_BYTES (64 * 1024)

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

__attribute__((constructor)) static void leave_environment(void)
{
	unsetenv("LD_PRELOAD");
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
	return p;
}
