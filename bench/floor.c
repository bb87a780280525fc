/* The floor of any capture splitter: read every packet of a capture with libpcap
 * and write all of them, unchanged, to one pcap file. No decoding, no flow table,
 * one output file. bench/bench_capture.py compiles it with gcc -O2 ... -lpcap.
 *
 *     floor CAPTURE OUT.pcap                 copy every packet to OUT.pcap
 *     floor --create N DIR                   create N files DIR/N.pcap, each holding
 *                                            only a 24-byte pcap file header
 *
 * The first form prints "PACKETS BYTES" (packets copied, bytes of packet data)
 * on stdout. The second form is not a floor of the whole job but of one part of
 * it: the cost of creating, writing and closing one small file per flow on the
 * output file system, which no flow splitter can avoid.
 *
 * Output goes through stdio with a 1 MiB buffer (pcap_dump_fopen), so the copy
 * costs one read and one write system call per MiB, not per packet. */
#include <errno.h>
#include <fcntl.h>
#include <pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define OUT_BUFFER (1 << 20)

static int copy(const char *in, const char *out)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *pcap = pcap_open_offline(in, errbuf);
    if (pcap == NULL) {
        fprintf(stderr, "floor: %s: %s\n", in, errbuf);
        return 1;
    }
    FILE *file = fopen(out, "wb");
    if (file == NULL) {
        fprintf(stderr, "floor: %s: %s\n", out, strerror(errno));
        return 1;
    }
    static char buffer[OUT_BUFFER];
    setvbuf(file, buffer, _IOFBF, sizeof buffer);
    pcap_dumper_t *dumper = pcap_dump_fopen(pcap, file);
    if (dumper == NULL) {
        fprintf(stderr, "floor: %s: %s\n", out, pcap_geterr(pcap));
        return 1;
    }
    struct pcap_pkthdr *header;
    const u_char *data;
    uint64_t packets = 0, bytes = 0;
    int status;
    while ((status = pcap_next_ex(pcap, &header, &data)) == 1) {
        pcap_dump((u_char *)dumper, header, data);
        packets++;
        bytes += header->caplen;
    }
    if (status == PCAP_ERROR) {
        fprintf(stderr, "floor: %s: %s\n", in, pcap_geterr(pcap));
        return 1;
    }
    if (pcap_dump_flush(dumper) != 0) {
        fprintf(stderr, "floor: %s: write failed\n", out);
        return 1;
    }
    pcap_dump_close(dumper); /* closes file */
    pcap_close(pcap);
    printf("%llu %llu\n", (unsigned long long)packets, (unsigned long long)bytes);
    return 0;
}

static int create(long count, const char *dir)
{
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        fprintf(stderr, "floor: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    /* a little-endian microsecond pcap header, Ethernet */
    static const uint8_t header[24] = {0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0,
                                       0,    0,    0,    0,    0, 0, 4, 0, 1, 0, 0, 0};
    char name[32];
    for (long i = 0; i < count; i++) {
        snprintf(name, sizeof name, "%ld.pcap", i);
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0 || write(fd, header, sizeof header) != (ssize_t)sizeof header || close(fd) != 0) {
            fprintf(stderr, "floor: %s/%s: %s\n", dir, name, strerror(errno));
            return 1;
        }
    }
    close(dirfd);
    printf("%ld\n", count);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--create") == 0)
        return create(strtol(argv[2], NULL, 10), argv[3]);
    if (argc == 3)
        return copy(argv[1], argv[2]);
    fprintf(stderr, "usage: floor CAPTURE OUT.pcap | floor --create N DIR\n");
    return 2;
}
