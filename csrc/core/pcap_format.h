/* The classic pcap file format: a 24-byte global header, then one 16-byte
 * record header before each frame's bytes. */
#ifndef PCAPFLOW_PCAP_FORMAT_H
#define PCAPFLOW_PCAP_FORMAT_H

#include <stdint.h>

#include "pcapflow_core.h"

void pcap_write_global_header(const struct pcap_layout *layout, uint32_t linktype,
                              uint8_t out[PCAP_GLOBAL_HEADER_SIZE]);

/* Converts the timestamp to the layout's resolution (truncating when going
 * from nanoseconds to microseconds, as libpcap does) and writes the record
 * header. A sub-second field too large for 32 bits carries into the seconds.
 * Returns -1 when the seconds or a length do not fit in 32 bits. */
int pcap_write_record_header(const struct pcap_layout *layout, const struct pcap_record *record,
                             uint8_t out[PCAP_RECORD_HEADER_SIZE]);

#endif
