/* libFuzzer harness: any bytes as a capture file, read by libpcap and traced
 * by the core into pcap files in a scratch directory (removed after each
 * input). Damaged captures must end in CAPTURE_DAMAGED, never a crash. The
 * last byte also chooses how long runs are traced: an idle timeout of 0 to
 * 630 ms (bits 2-7) and closed flows forgotten (bit 0), their labels pruned
 * (bit 1). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pcapflow_core.h"

static char directory[64];

static void empty_directory(void)
{
    DIR *dir = opendir(directory);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", directory, entry->d_name);
        unlink(path);
    }
    closedir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!directory[0]) {
        snprintf(directory, sizeof directory, "/tmp/pcapflow-fuzz-XXXXXX");
        if (!mkdtemp(directory))
            abort();
    }
    FILE *file = fmemopen((void *)data, size ? size : 1, "rb");
    if (!file || !size) {
        if (file)
            fclose(file);
        return 0;
    }
    struct capture *capture = capture_new();
    if (!capture) {
        fclose(file);
        return 0;
    }
    if (capture_open(capture, file, NULL) < 0) {
        capture_delete(capture);
        return 0;
    }
    struct tracer_config config = {.directory = directory, .extension = ".pcap", .write_pcap = 1,
                                   .max_open_files = 4, .flush_bytes = 512, .max_pending_bytes = 4096};
    struct tracer_error error;
    struct tracer *tracer = tracer_new(&config, &error);
    uint8_t choice = data[size - 1];
    if (tracer && tracer_set_idle_timeout(tracer, (uint64_t)(choice >> 2) * 10000000u) < 0) {
        tracer_delete(tracer);
        tracer = NULL;
    }
    if (tracer) {
        tracer_forget_closed(tracer, choice & 1, choice & 2);
        uint64_t frame_number = 0;
        struct capture_stats stats = {0};
        while (capture_trace(capture, tracer, &frame_number, 1024, &stats) == CAPTURE_MORE)
            ;
        tracer_flush_all(tracer);
    }
    tracer_delete(tracer);
    capture_delete(capture);
    empty_directory();
    return 0;
}
