import type { BounceCategory, DeliveryReport } from './delivery-report.ts';

/**
 * Recognises a delivery status notification, an automatic reply or a read receipt in a raw message;
 * null for ordinary mail. Never throws; bounded work on any input (reads at most the first few MB).
 */
export async function recognizeReport(raw: Buffer): Promise<DeliveryReport | null> {
  void raw;
  return null;
}

/** Plain-words explanation (cause + fix) of a category, through the catalogue. */
export function explainCategory(category: BounceCategory): { cause: string; fix: string; code: string } {
  return { cause: category, fix: '', code: `BOUNCE_${category}` };
}
