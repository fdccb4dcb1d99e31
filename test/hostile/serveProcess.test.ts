import { describe, expect, it } from "vitest"
import { startServe } from "./serveProcess.ts"

describe("serveProcess harness", () => {
  it("starts effect-ssh serve in a child and reads its memory", async () => {
    const server = await startServe()
    try {
      expect(server.port).toBeGreaterThan(0)
      expect(server.rssBytes()).toBeGreaterThan(10 * 1024 * 1024)
      expect(server.peakRssBytes()).toBeGreaterThanOrEqual(server.rssBytes())
      expect(server.log()).toContain("SFTP: serving")
    } finally {
      await server.stop()
    }
  })
})
