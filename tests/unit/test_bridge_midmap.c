/* Unit tests of midmap.c's renumbering after a reload (the put/take
 * tests live beside the queue's, which they serve): entries of removed
 * owners are forgotten, the others follow their owner to its new index,
 * and entries of one id are still taken older first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "midmap.h"

static void test_remap_renumbers_and_forgets(void **state) {
  static cb2m_midmap m; /* 16 KiB: not on the stack */
  /* Old owners 0, 1, 2: 1 is removed, 2 becomes 0, 0 becomes 1. */
  const uint32_t new_of_old[] = {1, CB2M_MIDMAP_GONE, 0};
  uint32_t owner;
  uint64_t seq;

  (void)state;
  cb2m_midmap_clear(&m);
  for (int mid = 1; mid <= 240; mid++)
    assert_int_equal(cb2m_midmap_put(&m, mid, (uint32_t)mid % 3, (uint64_t)mid * 10), CBEV_OK);
  assert_int_equal(cb2m_midmap_put(&m, 5000, 7, 1), CBEV_OK); /* an owner past n_old */
  cb2m_midmap_remap(&m, new_of_old, 3);
  assert_int_equal(m.count, 160);
  for (int mid = 1; mid <= 240; mid++) {
    if (mid % 3 == 1) {
      assert_int_equal(cb2m_midmap_take(&m, mid, &owner, &seq), 0);
      continue;
    }
    assert_int_equal(cb2m_midmap_take(&m, mid, &owner, &seq), 1);
    assert_int_equal(owner, new_of_old[mid % 3]);
    assert_int_equal(seq, (uint64_t)mid * 10);
  }
  assert_int_equal(cb2m_midmap_take(&m, 5000, &owner, &seq), 0);
  assert_int_equal(m.count, 0);
}

/* Ids wrapped while a message stayed unacked: two entries of one id. The
 * older is still taken first after the renumbering, also when the probe
 * run wraps around the end of the table. */
static void test_remap_keeps_the_order_of_one_id(void **state) {
  static cb2m_midmap m;
  const uint32_t swap[] = {1, 0}; /* owners trade places */
  uint32_t owner;
  uint64_t seq;
  int found = 0;

  (void)state;
  cb2m_midmap_clear(&m);
  /* Fill the table's last slots so that the run of some id wraps: put
   * ids until one lands at the last slot, then its twins follow at 0.. */
  for (int mid = 1; mid < 65536 && !found; mid++) {
    cb2m_midmap_clear(&m);
    assert_int_equal(cb2m_midmap_put(&m, mid, 0, 1), CBEV_OK);
    if (m.slot[CB2M_MIDMAP_SLOTS - 1].mid == mid) {
      assert_int_equal(cb2m_midmap_put(&m, mid, 1, 2), CBEV_OK);
      assert_int_equal(cb2m_midmap_put(&m, mid, 0, 3), CBEV_OK);
      assert_int_equal(m.slot[0].mid, mid);
      cb2m_midmap_remap(&m, swap, 2);
      assert_int_equal(cb2m_midmap_take(&m, mid, &owner, &seq), 1);
      assert_int_equal(seq, 1);
      assert_int_equal(owner, 1);
      assert_int_equal(cb2m_midmap_take(&m, mid, &owner, &seq), 1);
      assert_int_equal(seq, 2);
      assert_int_equal(owner, 0);
      assert_int_equal(cb2m_midmap_take(&m, mid, &owner, &seq), 1);
      assert_int_equal(seq, 3);
      assert_int_equal(owner, 1);
      found = 1;
    }
  }
  assert_true(found);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_remap_renumbers_and_forgets),
      cmocka_unit_test(test_remap_keeps_the_order_of_one_id),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
