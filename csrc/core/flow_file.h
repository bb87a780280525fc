/* Buffered output of one flow's file, with a bounded set of open descriptors. */
#ifndef PCAPFLOW_FLOW_FILE_H
#define PCAPFLOW_FLOW_FILE_H

#include "tracer.h"

/* Queues first then second (a record's header and data) for the flow's file,
 * both or, when memory or the 32-bit buffer length runs out, neither; then
 * writes the buffer out when it grew past flush_bytes, and the largest
 * buffers when all together pass max_pending_bytes. Returns 0, -1 when
 * nothing was queued, or TRACER_QUEUED_UNWRITTEN when the record was queued
 * but writing out failed (tr->error says; the next flush tries again). */
int flow_file_queue(struct tracer *tr, uint32_t slot, const void *first, size_t first_length, const void *second,
                    size_t second_length);
/* Writes the flow's pending bytes, creating the file on first use. */
int flow_file_flush(struct tracer *tr, uint32_t slot);
/* Closes the flow's descriptor, if open, and frees its buffer. */
void flow_file_release(struct tracer *tr, uint32_t slot);
/* Opens name (relative to the output directory) for appending, creating or
 * truncating it when `create` is set; never follows a symbolic link. */
int flow_file_open(struct tracer *tr, const char *name, int create);
/* Creates name in directory_fd (or truncates an existing regular file of the
 * effective user's with one link: others fail with EEXIST) for appending,
 * without following a symbolic link. Returns the descriptor or -1. */
int flow_file_create_at(int directory_fd, const char *name);
/* Writes both buffers, in one system call when it can. Returns 0 or -1. */
int flow_file_write_two(int fd, const uint8_t *first, size_t first_length, const uint8_t *second,
                        size_t second_length);
/* Writes what is queued for a flow that is closing: by a background writer
 * when one runs and the file is still to be made, otherwise at once. */
int flow_file_finish(struct tracer *tr, uint32_t slot);
/* What to say when opening an output file failed with errno `code`. */
const char *flow_file_open_failure(int code);
/* Sets tr->error from errno for an operation on name. */
void flow_file_set_error(struct tracer *tr, const char *what, const char *name);
/* Writes all of length bytes; returns 0 or -1 with errno set. */
int flow_file_write_all(int fd, const uint8_t *bytes, size_t length);
/* The file name of a flow inside the output directory. */
int flow_file_name(const struct tracer *tr, const char *label, uint32_t use_number, char *out,
                   size_t size);

#endif
