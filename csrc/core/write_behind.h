/* Background writers for finished flow files.
 *
 * Most flows of a real capture are short: the file is created, written and
 * closed once, when the FIN arrives. Creating a file costs far more than
 * tracing its frames (on tmpfs ~8 us against ~1 us for the whole flow), and
 * it is work the kernel can do for one thread while another reads and
 * decodes the capture. The tracer hands such a flow over as a job (its file
 * name, global header and buffered records); worker threads make the files.
 *
 * Bounds: at most WRITE_BEHIND_JOBS jobs and max_bytes of records wait at
 * once (the tracer waits for room), and each worker holds one descriptor at
 * a time. A queued job waits at most ~10 ms for a worker, so files of
 * finished flows appear promptly even when the capture comes slowly through a
 * pipe. A failed job is reported by the next submit or by finish, naming
 * the file; later jobs still run, so as much as possible reaches the disk.
 * A job that finds the process out of descriptors is handed back by finish
 * for the tracer to write itself, once the workers hold none (the tracer can
 * give its own back; see flow_file_open). */
#ifndef PCAPFLOW_WRITE_BEHIND_H
#define PCAPFLOW_WRITE_BEHIND_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "pcap_format.h"

enum { WRITE_BEHIND_JOBS = 1024, WRITE_BEHIND_MAX_THREADS = 4 };

struct write_job {
    char *name;     /* relative to the output directory; owned by the job */
    uint8_t *bytes; /* pcap records; owned by the job */
    size_t length;
    uint8_t header[PCAP_GLOBAL_HEADER_SIZE];
};

struct write_failure {
    int code;
    char message[160];
    char name[4096];
};

struct write_behind {
    int directory_fd;
    size_t max_bytes;
    pthread_t threads[WRITE_BEHIND_MAX_THREADS];
    int thread_count;
    pthread_mutex_t lock;
    pthread_cond_t work_ready, room_ready;
    struct write_job jobs[WRITE_BEHIND_JOBS]; /* ring: first, first + 1, ... (count of them) */
    size_t first, count;
    int idle_workers, producer_waiting; /* signal only a thread that waits: a wake-up is a system call */
    size_t queued_bytes;
    int stopping;
    int failed, short_of_descriptors;
    struct write_failure failure; /* the first job that failed */
    struct write_job *deferred;   /* jobs for the tracer: no descriptor was left */
    size_t deferred_count, deferred_capacity;
};

/* Writes the job's header and records into fd (a file just made for it)
 * and closes fd. On failure removes the file and returns -1 with errno set. */
int write_job_into(int directory_fd, int fd, const struct write_job *job);
/* Starts thread_count workers creating files in directory_fd. Returns the
 * writers, or NULL with errno set (nothing started). */
struct write_behind *write_behind_start(int directory_fd, int thread_count, size_t max_bytes);
/* Queues a job, waiting while the queue is full. Takes ownership of the
 * job's name and bytes. Returns 0; 1 when a worker ran out of descriptors
 * (time to finish and go on without workers); -1 when an earlier job failed
 * (finish tells which). The job is queued in every case. */
int write_behind_submit(struct write_behind *wb, struct write_job job);
/* Waits for every queued job, stops the workers and frees wb. Copies the
 * first failure, if any, to *failure, and hands back the jobs that found no
 * descriptor (*deferred, *deferred_count: the caller writes and frees them).
 * Returns 0, or -1 when a job failed. */
int write_behind_finish(struct write_behind *wb, struct write_failure *failure, struct write_job **deferred,
                        size_t *deferred_count);

#endif
