// The booking card, shared by the chat page (chat.js) and calls (voice.js) so a booking
// looks the same however it was made. Builds the same markup as templates/booking_card.html.
// Text only ever goes in via textContent.
//
// The server decides what a card says (chatdesk/conversations/booking_cards.py: `state`, `headline`,
// `note`, `previous_when`) and sends the booking as it stands now. One card per booking:
// showing a booking that already has a card updates that card where it is (next to the
// reply that first produced it) instead of adding another.
(function () {
  "use strict";

  // Only for booking dicts that come without the server's card fields (a call's raw tool
  // result): the status alone still must never show a cancelled visit as confirmed.
  var BY_STATUS = {
    pending: ["pending", "Booking requested"],
    confirmed: ["confirmed", "Booking confirmed"],
    cancelled: ["cancelled", "Booking cancelled"],
    completed: ["completed", "Visit completed"],
    no_show: ["no_show", "Visit missed"],
  };
  var KEEP_NUMBER = "Keep this number and your phone handy to change or cancel the visit.";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function findCard(transcript, number) {
    var cards = transcript.querySelectorAll("li.booking");
    for (var i = 0; i < cards.length; i++) {
      if (cards[i].dataset.booking === number) return cards[i];
    }
    return null;
  }

  function render(booking, number) {
    var fallback = BY_STATUS[booking.status] || BY_STATUS.confirmed;
    var state = booking.state || fallback[0];
    var item = el("li", "booking");
    item.dataset.booking = number;
    item.dataset.state = state;
    var card = el("section", "booking-card state-" + state);
    var headingId = "booking-" + number;
    card.setAttribute("aria-labelledby", headingId);
    var heading = el("h3");
    heading.id = headingId;
    var icon = el("span", "booking-icon");
    icon.setAttribute("aria-hidden", "true");
    heading.append(icon, " ", el("span", "booking-headline", booking.headline || fallback[1]));
    var details = el("dl");
    [
      ["Service", booking.service],
      ["When", booking.when, "booking-when"],
      ["Was", booking.previous_when, "booking-was"],
      ["Technician", booking.technician],
      ["Address", booking.address],
      ["Estimate", booking.estimated_price],
    ].forEach(function (row) {
      if (row[1]) details.append(el("dt", "", row[0]), el("dd", row[2] || "", row[1]));
    });
    var note = booking.note || (state === "pending" || state === "confirmed" ? KEEP_NUMBER : "");
    card.append(heading, el("p", "booking-number", number), details);
    if (note) card.append(el("p", "booking-note", note));
    item.append(card);
    return item;
  }

  /*
   * Shows `booking` (a card dict from the chat API): updates its card in place when the
   * page has one, else inserts a new card after `after` (an item of the transcript), or
   * at the end. Returns "added", "updated" or "" (no booking number).
   */
  function showBooking(transcript, booking, after) {
    var number = String((booking && booking.booking_number) || "");
    if (!number) return "";
    var item = render(booking, number);
    var existing = findCard(transcript, number);
    if (existing) {
      existing.replaceWith(item);
      return "updated";
    }
    if (after && after.parentNode === transcript) {
      // After the cards already shown for that message, so a turn's cards keep their order.
      while (after.nextElementSibling && after.nextElementSibling.classList.contains("booking")) {
        after = after.nextElementSibling;
      }
      after.after(item);
    } else {
      transcript.append(item);
    }
    return "added";
  }

  // For voice.js: true when a new card was added (an existing one is updated in place).
  function appendBooking(transcript, booking) {
    return showBooking(transcript, booking, null) === "added";
  }

  window.ChatdeskUI = { appendBooking: appendBooking, showBooking: showBooking };
})();
